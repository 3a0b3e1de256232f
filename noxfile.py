"""Every command a person or CI runs for MV-OS.  `nox -l` lists the sessions; workflows only call these.

Sessions install from the hashed lock files in requirements/ (regenerate them with `nox -s lock`) into venvs
that are reused between runs, so warm runs are fast.  The backend is put on PYTHONPATH, not installed."""

from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
REQ = ROOT / "requirements"
LOCK_GROUPS = {"app": None, "pg": "pg", "test": "test", "lint": "lint", "release": "release"}

nox.needs_version = ">=2025.5"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True


def _install(session: nox.Session, group: str) -> None:
    """Install one lock file (exact pins with hashes) and point PYTHONPATH at the backend and scripts."""
    session.install("--require-hashes", "-r", str(REQ / f"{group}.txt"))
    session.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "backend"), str(ROOT)])


def _local_env(session: nox.Session) -> None:
    session.env.setdefault("NODE_ENV", "local")
    session.env.setdefault("PYTHONUNBUFFERED", "1")


@nox.session
def dev(session: nox.Session) -> None:
    """Run MV-OS locally on http://127.0.0.1:3000: NODE_ENV=local, mock providers, embedded PostgreSQL.

    Migrates and seeds the demo user first.  `nox -s dev -- --no-reload` turns the code reloader off."""
    _install(session, "pg")
    _local_env(session)
    session.run("python", "-m", "mv_os.devserver", *session.posargs)


@nox.session
def serve(session: nox.Session) -> None:
    """Like `dev`, but under gunicorn with the production-like gunicorn.conf.py (PORT defaults to 3000)."""
    _install(session, "pg")
    _local_env(session)
    session.env.setdefault("PORT", "3000")
    session.run("python", "-m", "mv_os.devserver", "--gunicorn", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on a real PostgreSQL (DATABASE_URL/TEST_DATABASE_URL, else the embedded server).

    Extra arguments go to pytest, e.g. `nox -s tests -- -k auth -x`."""
    _install(session, "test")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """Static checks: ruff (lint + format), import-linter contracts, lock files in sync."""
    _install(session, "lint")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")
    _lock_impl(session, check=True)


def _lock_impl(session: nox.Session, *, check: bool) -> None:
    for name, group in LOCK_GROUPS.items():
        out = REQ / f"{name}.txt"
        args = [
            "uv",
            "pip",
            "compile",
            "pyproject.toml",
            "--universal",
            "--generate-hashes",
            "--python-version",
            "3.11",
            "--quiet",
            "--no-header",
        ]
        if group:
            args += ["--group", group]
        if check:
            fresh = session.run(*args, silent=True, external=True)
            if fresh.strip() != out.read_text().strip():
                session.error(f"{out.relative_to(ROOT)} is out of date with pyproject.toml: run `nox -s lock`")
        else:
            session.run(*args, "-o", str(out), external=True)


@nox.session(default=False)
def lock(session: nox.Session) -> None:
    """Regenerate the hashed lock files in requirements/ from pyproject.toml (after changing a dependency)."""
    session.install("uv")
    _lock_impl(session, check=False)
