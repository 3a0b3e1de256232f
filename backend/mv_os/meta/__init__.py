"""Meta's WhatsApp wire format: webhook signatures, payload parsing into dataclasses, Graph API error codes.

Standard library only, so the replay CLI runs without the backend's dependencies."""
