"""Webhook intake and processing split: the request path only archives the exact bytes (one multi-row INSERT
per group commit); `mv_os.webhooks.processor` turns archived payloads into rows behind it.

- `processed_at`: when the payload's messages/receipts were stored (NULL = still to do);
- `processing_error`: why a payload could not be processed on its own (it is then kept, marked processed so it
  does not block the queue, and can be replayed after a fix);
- a partial index on the unprocessed ids: the processor's queue scan stays O(backlog), not O(archive).

`processed_at` defaults to now(): rows written by the previous version (which ingests synchronously and does not
know the column) count as processed, so a rollback to it and a roll forward again never process them twice.
The new intake inserts NULL explicitly.  Existing rows get the time of the migration (a constant default: no
table rewrite)."""


def up(migrator, db):
    db.execute_sql("ALTER TABLE webhook_payloads ADD COLUMN processed_at timestamptz NULL DEFAULT now()")
    db.execute_sql("ALTER TABLE webhook_payloads ADD COLUMN processing_error text NULL")
    db.execute_sql("CREATE INDEX webhook_payloads_unprocessed ON webhook_payloads (id) WHERE processed_at IS NULL")


def down(migrator, db):
    db.execute_sql("DROP INDEX IF EXISTS webhook_payloads_unprocessed")
    db.execute_sql("ALTER TABLE webhook_payloads DROP COLUMN IF EXISTS processing_error")
    db.execute_sql("ALTER TABLE webhook_payloads DROP COLUMN IF EXISTS processed_at")
