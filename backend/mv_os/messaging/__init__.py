"""The messaging domain: contacts, conversations, messages and their delivery statuses.

`inbound.store` records a parsed webhook batch, `outbound.record_sent` a message the provider accepted; both
move statuses with the one rule in `status` and `receipts`, under the striped locks of `locks`.  No Flask
here and no Meta JSON: the API and the webhook processor call in, with values already parsed."""
