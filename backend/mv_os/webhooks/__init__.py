"""Inbound webhooks: `whatsapp` is the `/webhooks/whatsapp` blueprint (handshake, signature, archive),
`fastpath` answers the usual POST in front of Flask, `intake` archives the bytes with a group commit, and
`processor` parses the archived payloads and hands them to `messaging.inbound`."""
