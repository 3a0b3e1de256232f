"""Secret scan for `nox -s lint` and pre-commit: detect-secrets over the given files, against the committed
.secrets.baseline, which is only READ (detect-secrets-hook rewrites it to track line numbers, which would make
CI fail on a clean checkout).  Exit 1 and name file:line:type for every finding the baseline does not hold.

The baseline carries the plugin and filter settings, including the project's placeholder rules:
  --exclude-secrets '^mv-os/'            Secrets Manager NAMES (env/environments.toml), not values
  --exclude-secrets '^<[^>]*>$'          template placeholders such as <from Secrets Manager: …>
  --exclude-secrets '^(local|demo)-'     the local template's documented defaults (local-app-secret, …)
  --exclude-lines   'postgres:postgres@(localhost|127.0.0.1)' and 'POSTGRES_PASSWORD: postgres'
                                         the seed's documented local-only database default
A false positive is allowed inline with `# pragma: allowlist secret` and a reason on that line.  No network:
detect-secrets' optional verification against live services is never enabled.

detect-secrets misses unquoted `NAME=value` lines of modest entropy, so env templates (env/*.example) get a
stricter rule of their own: a secret-named variable (…SECRET…, …TOKEN…, …PASSWORD…, …_KEY, DATABASE_URL) holds
a `<placeholder>`; only the local template may hold a visibly local default (containing "local" or "demo",
or the seed's postgres:postgres@localhost URL).

Usage: python scripts/check_secrets.py [--baseline .secrets.baseline] FILE..."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def new_findings(files: list[str], baseline_path: Path) -> list[str]:
    from detect_secrets.core import baseline  # imported here: only the lint venv has detect-secrets
    from detect_secrets.core.secrets_collection import SecretsCollection

    known = baseline.load(baseline.load_from_file(str(baseline_path)), str(baseline_path))  # also sets plugins
    found = SecretsCollection()
    for name in files:
        if Path(name).is_file() and Path(name).resolve() != baseline_path.resolve():
            found.scan_file(name)
    return sorted(f"{filename}:{secret.line_number}: {secret.type}" for filename, secret in found - known)


TEMPLATE_RE = re.compile(r"(^|/)env/[^/]+\.example$")
SECRET_NAME_RE = re.compile(r"SECRET|TOKEN|PASSWORD|_KEY$|^DATABASE_URL$")
LOCAL_DEFAULT_RE = re.compile(r"local|demo|^postgres(ql)?://postgres:postgres@(localhost|127\.0\.0\.1)[:/]")


def template_findings(files: list[str]) -> list[str]:
    """Secret-named variables in env templates must hold placeholders (local: visibly local defaults)."""
    bad = []
    for name in files:
        if not TEMPLATE_RE.search(name.replace("\\", "/")) or not Path(name).is_file():
            continue
        local = ".local." in Path(name).name
        for lineno, line in enumerate(Path(name).read_text().splitlines(), 1):
            key, sep, value = line.strip().partition("=")
            if not sep or key.startswith("#") or not SECRET_NAME_RE.search(key):
                continue
            value = value.strip().strip("\"'")
            if re.fullmatch(r"<[^>]*>", value) or (local and LOCAL_DEFAULT_RE.search(value)):
                continue
            bad.append(f"{name}:{lineno}: {key} in an env template must be a <placeholder>")
    return bad


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=Path(".secrets.baseline"))
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    bad = new_findings(args.files, args.baseline) + template_findings(args.files)
    for line in bad:
        print(f"possible secret: {line}", file=sys.stderr)
    if bad:
        print(
            "Move real secrets to AWS Secrets Manager (templates hold placeholders only); for a false positive add "
            "`# pragma: allowlist secret` with a reason on that line.",
            file=sys.stderr,
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
