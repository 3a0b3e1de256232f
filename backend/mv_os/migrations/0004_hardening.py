"""Hardening (expand only: new columns with defaults, a new table, new indexes; the previous release ignores
them all and keeps working against this schema):

- `users.token_version`: a token carries the version it was issued under; logout and a password change bump
  it, so every older token is refused (auth.py);
- `login_throttle`: failed logins per account and per client address, shared by every worker and instance
  (throttle.py);
- `messages.idempotency_key`: an outbound message is stored before the provider call; a retried POST with the
  same `Idempotency-Key` finds it instead of sending again (unique per conversation)."""


def up(migrator, db):
    db.execute_sql("ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0")
    db.execute_sql(
        "CREATE TABLE login_throttle ("
        "key text PRIMARY KEY, failures integer NOT NULL, window_start timestamptz NOT NULL, "
        "locked_until timestamptz NULL)"
    )
    db.execute_sql("ALTER TABLE messages ADD COLUMN idempotency_key text NULL")
    db.execute_sql(
        "CREATE UNIQUE INDEX messages_idempotency_key ON messages (conversation_id, idempotency_key) "
        "WHERE idempotency_key IS NOT NULL"
    )


def down(migrator, db):
    db.execute_sql("DROP INDEX IF EXISTS messages_idempotency_key")
    db.execute_sql("ALTER TABLE messages DROP COLUMN IF EXISTS idempotency_key")
    db.execute_sql("DROP TABLE IF EXISTS login_throttle")
    db.execute_sql("ALTER TABLE users DROP COLUMN IF EXISTS token_version")
