"""MV-OS backend: `create_app()` is the Flask application factory (gunicorn: `mv_os:create_app()`).

Importing the package loads nothing else, so `mv_os.meta` works with the standard library alone (the replay
CLI runs without the backend's dependencies)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from mv_os.settings import Settings

# Meta sends webhook batches up to about 3 MB; nothing else we accept is larger.
MAX_CONTENT_LENGTH = 4 * 1024 * 1024


def create_app(settings: Settings | None = None) -> Flask:
    from mv_os.app import create_app as factory

    return factory(settings)
