"""Operational scripts: the release engine (scripts.release) and webhook tools (scripts.webhooks)."""
