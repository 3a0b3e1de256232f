#!/bin/sh
# The image's start command (Dockerfile ENTRYPOINT), also run as-is by tests/release/test_dockerfile.py.
# 1. Apply pending migrations under the PostgreSQL advisory lock: when App Runner starts several instances at
#    once, one migrates and the others wait for the lock (MIGRATION_LOCK_TIMEOUT seconds), then find nothing to do.
# 2. `exec` gunicorn, so it becomes PID 1 and receives App Runner's SIGTERM for a graceful stop.
# A config error (missing/placeholder secret, wrong NODE_ENV) stops here with one line naming the variable.
set -eu
cd "$(dirname "$0")/.."
flask --app mv_os migrate --lock-timeout "${MIGRATION_LOCK_TIMEOUT:-120}"
exec gunicorn -c gunicorn.conf.py 'mv_os:create_app()'
