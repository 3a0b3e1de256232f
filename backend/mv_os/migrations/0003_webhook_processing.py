"""Webhook intake and processing split: the request path only archives the exact bytes (one multi-row INSERT
per group commit); `mv_os.webhooks.processor` turns archived payloads into rows behind it.

- `processed_at`: when the payload's messages/receipts were stored (NULL = still to do);
- `processing_error`: why a payload could not be processed on its own (it is then kept, marked processed so it
  does not block the queue, and can be replayed after a fix);
- a partial index on the unprocessed ids: the processor's queue scan stays O(backlog), not O(archive).

Payloads archived before this migration were ingested synchronously, so they count as processed."""


def up(migrator, db):
    db.execute_sql("ALTER TABLE webhook_payloads ADD COLUMN processed_at timestamptz NULL")
    db.execute_sql("ALTER TABLE webhook_payloads ADD COLUMN processing_error text NULL")
    db.execute_sql("UPDATE webhook_payloads SET processed_at = last_received_at")
    db.execute_sql("CREATE INDEX webhook_payloads_unprocessed ON webhook_payloads (id) WHERE processed_at IS NULL")


def down(migrator, db):
    db.execute_sql("DROP INDEX IF EXISTS webhook_payloads_unprocessed")
    db.execute_sql("ALTER TABLE webhook_payloads DROP COLUMN IF EXISTS processing_error")
    db.execute_sql("ALTER TABLE webhook_payloads DROP COLUMN IF EXISTS processed_at")
