"""Replay WhatsApp webhook fixtures against a running MV-OS: sign the exact bytes, POST, report.

    nox -s replay -- scripts/webhooks/fixtures
    PYTHONPATH=backend:. python3 -m scripts.webhooks.replay [FIXTURE|DIR ...] [--url URL] [--env-file FILE]
        [--production]

- Fixtures are sent byte for byte as stored (never re-serialized): the signature is over those bytes.
  Directories are expanded to their *.json files in name order.  No argument: every fixture.
- The secret (WHATSAPP_APP_SECRET) comes from the env file: env/backend.env.local.example by default, so a
  local `nox -s dev` accepts the replay out of the box.  For staging, point --env-file at a filled-in copy
  and --url at the staging (or ngrok/cloudflared) URL.
- Prints one line per fixture and exits 1 if any answer was not 200 (2 on usage errors or a refusal).
- Production: refused unless --production is given AND the operator types "production" when asked.

Standard library only (and `mv_os.meta`, which is too), so it runs with any python3 whose path holds the
repository root and backend/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from mv_os.meta.signing import signed_headers

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEFAULT_ENV_FILE = ROOT / "env" / "backend.env.local.example"


def default_url() -> str:
    """The local server `nox -s dev` starts: port $PORT, else 3000."""
    return f"http://127.0.0.1:{os.environ.get('PORT') or '3000'}/webhooks/whatsapp"


CONFIRM_WORD = "production"
PLACEHOLDER_MARKERS = ("<", "change-me", "changeme", "replace-me", "from secrets manager")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; '#' comments; optional quotes.  Enough for the env/*.example templates."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def collect(paths: list[str]) -> list[Path]:
    if not paths:
        paths = [str(FIXTURES)]
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists() and (FIXTURES / raw).exists():
            path = FIXTURES / raw
        if path.is_dir():
            found.extend(sorted(path.glob("*.json")))
        elif path.is_file():
            found.append(path)
        else:
            raise SystemExit(f"replay: no such fixture or directory: {raw}")
    return found


def post(url: str, body: bytes, secret: str, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(  # noqa: S310 - main() only lets http(s) URLs through
        url,
        data=body,
        method="POST",
        headers={**signed_headers(secret, body), "User-Agent": "mv-os-replay"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) URL checked
            return response.status, response.read(300).decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read(300).decode("utf-8", "replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = getattr(err, "reason", err)
        return 0, f"no answer: {reason}"


def is_production(env: dict[str, str]) -> bool:
    return env.get("NODE_ENV", "").strip().lower() == "production"


def confirm_production(url: str, ask=input) -> bool:
    print(f"replay: about to POST webhook fixtures to PRODUCTION at {url}", file=sys.stderr)
    try:
        answer = ask(f'Type "{CONFIRM_WORD}" to continue: ')
    except EOFError:
        return False
    return answer.strip() == CONFIRM_WORD


def main(argv: list[str] | None = None, *, ask=input) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.webhooks.replay", description=__doc__.split("\n\n")[0])
    parser.add_argument("fixtures", nargs="*", help="fixture files or directories (default: every fixture)")
    parser.add_argument("--url", default=default_url(), help="webhook URL (default: local, port $PORT or 3000)")
    parser.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE, help="env file holding WHATSAPP_APP_SECRET")
    parser.add_argument("--production", action="store_true", help="allow a production env file (asks to confirm)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    args = parser.parse_args(argv)

    if urlsplit(args.url).scheme not in ("http", "https") or not urlsplit(args.url).netloc:
        print(f"replay: --url must be an http(s) URL, got {args.url!r}", file=sys.stderr)
        return 2
    if not args.env_file.is_file():
        print(f"replay: env file not found: {args.env_file}", file=sys.stderr)
        return 2
    env = read_env_file(args.env_file)
    secret = env.get("WHATSAPP_APP_SECRET", "")
    if not secret or any(marker in secret.lower() for marker in PLACEHOLDER_MARKERS):
        print(
            f"replay: {args.env_file} has no real WHATSAPP_APP_SECRET (missing or a template placeholder)",
            file=sys.stderr,
        )
        return 2
    if is_production(env):
        if not args.production:
            print(
                f"replay: {args.env_file} is a production env file (NODE_ENV=production); refusing. "
                "Pass --production to be asked for confirmation.",
                file=sys.stderr,
            )
            return 2
        if not confirm_production(args.url, ask):
            print("replay: not confirmed; nothing was sent", file=sys.stderr)
            return 2

    try:
        fixtures = collect(args.fixtures)
    except SystemExit as err:
        print(err, file=sys.stderr)
        return 2
    if not fixtures:
        print("replay: no fixtures found", file=sys.stderr)
        return 2

    print(f"replay: {len(fixtures)} fixture(s) -> {args.url} (secret from {args.env_file.name})")
    failures = 0
    started = time.perf_counter()
    for path in fixtures:
        body = path.read_bytes()
        t0 = time.perf_counter()
        status, answer = post(args.url, body, secret, args.timeout)
        elapsed_ms = (time.perf_counter() - t0) * 1000
        ok = status == 200
        failures += not ok
        line = f"{status or 'ERR':>3} {'ok  ' if ok else 'FAIL'} {path.name} ({len(body)} B, {elapsed_ms:.0f} ms)"
        if not ok:
            line += f"  {answer.strip()[:200]}"
        print(line)
    total = time.perf_counter() - started
    rate = len(fixtures) / total if total > 0 else float("inf")
    print(f"replay: {len(fixtures) - failures}/{len(fixtures)} answered 200 in {total:.2f}s ({rate:.1f} fixtures/s)")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
