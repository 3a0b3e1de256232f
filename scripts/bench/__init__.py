"""`nox -s bench`: MV-OS webhook ingestion under gunicorn on PostgreSQL, against a bare-Flask ceiling measured in
the same run.  `python -m scripts.bench --help`."""
