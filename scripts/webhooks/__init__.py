"""Webhook tools: `fixtures/` holds payloads as the exact bytes Meta sends; `replay` signs and POSTs them."""
