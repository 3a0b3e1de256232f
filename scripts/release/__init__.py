"""The MV-OS release engine: environments as data, gates, App Runner deploys by digest, smoke, the
staging-validated record, rollback and the isolation audit.  CLI: `python -m scripts.release --help`;
humans and CI use the nox sessions (plan, deploy, smoke, rollback, audit, validated-digest)."""
