"""Inbound webhooks.  `whatsapp` is the `/webhooks/whatsapp` blueprint, `ingest` turns a verified payload into
rows, `signing` holds the X-Hub-Signature-256 helpers shared with the mock provider and the replay CLI."""
