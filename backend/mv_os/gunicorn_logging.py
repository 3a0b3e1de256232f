"""gunicorn's own log lines ("Booting worker", "Handling signal: term", worker timeouts, the webhook intake line
at worker exit) in the same shape as the app's: JSON lines in staging/production, redacted like every other
line.  `gunicorn.conf.py` sets `logger_class` to this class; locally gunicorn's readable format is kept."""

from __future__ import annotations

from gunicorn.glogging import Logger as GunicornLogger

from mv_os.logging_setup import JsonFormatter, RedactingFilter
from mv_os.settings import load_or_exit


class Logger(GunicornLogger):
    def setup(self, cfg):
        super().setup(cfg)
        settings = load_or_exit()
        redactor = RedactingFilter(settings.secret_values())
        for handler in self.error_log.handlers:
            handler.addFilter(redactor)
            if settings.environment.deployed:
                handler.setFormatter(JsonFormatter())
