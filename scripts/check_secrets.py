"""Secret scan for `nox -s lint` and pre-commit: detect-secrets over the given files, against the committed
.secrets.baseline, which is only READ (detect-secrets-hook rewrites it to track line numbers, which would make
CI fail on a clean checkout).  Exit 1 and name file:line:type for every finding the baseline does not hold.

The baseline carries the plugin and filter settings, including the project's placeholder rules:
  --exclude-secrets '^mv-os/'            Secrets Manager NAMES (env/environments.toml), not values
  --exclude-secrets '^<[^>]*>$'          template placeholders such as <from Secrets Manager: …>
  --exclude-secrets '^(local|demo)-'     the local template's documented defaults (local-app-secret, …)
  --exclude-lines   'postgres:postgres@(localhost|127.0.0.1)' and 'POSTGRES_PASSWORD: postgres'
                                         the seed's documented local-only database default
A false positive is allowed inline with `# pragma: allowlist secret` and a reason on that line, so the baseline
stays empty and does not move when lines do.  `--write-baseline` regenerates it (`nox -s secrets-baseline`):
the same tree always gives the same bytes, and lint fails when the committed baseline is not that output.  No
network: detect-secrets' optional verification against live services is never enabled.

detect-secrets misses unquoted `NAME=value` lines of modest entropy, so env templates (env/*.example) get a
stricter rule of their own: a secret-named variable (…SECRET…, …TOKEN…, …PASSWORD…, …_KEY, DATABASE_URL) holds
a `<placeholder>`; only the local template may hold a visibly local default (containing "local" or "demo",
or the seed's postgres:postgres@localhost URL).

Usage: python scripts/check_secrets.py [--baseline .secrets.baseline] [--write-baseline] [--fresh] --tracked|FILE..."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

FILTERS = [  # the project's placeholder rules, explained above
    "--exclude-files", r"^(requirements/.*\.txt|uv\.lock|\.ci/requirements-nox\.txt|\.secrets\.baseline)$",
    "--exclude-secrets", r"^mv-os/", "--exclude-secrets", r"^<[^>]*>$", "--exclude-secrets", r"^(local|demo)-",
    # pragma: allowlist nextline secret (a filter pattern, not a credential)
    "--exclude-lines", r"postgres(ql)?://postgres:postgres@(localhost|127\.0\.0\.1)",
    "--exclude-lines", r"POSTGRES_PASSWORD:\s*.?postgres\b",
]  # fmt: skip


def fresh_baseline(files: list[str]) -> str:
    """The baseline detect-secrets writes for these files, without its timestamp: the same tree, the same bytes."""
    scan = [sys.executable, "-m", "detect_secrets", "scan", "-n", *FILTERS, *sorted(files)]
    data = json.loads(subprocess.run(scan, capture_output=True, text=True, check=True).stdout)
    data.pop("generated_at", None)
    return json.dumps(data, indent=2) + "\n"


def new_findings(fresh: str, baseline_path: Path) -> list[str]:
    """Findings of the fresh scan that the committed baseline does not hold (matched by file, type and hash)."""
    known = json.loads(baseline_path.read_text()).get("results", {})
    held = {(name, r["type"], r["hashed_secret"]) for name, results in known.items() for r in results}
    return sorted(
        f"{name}:{r['line_number']}: {r['type']}"
        for name, results in json.loads(fresh).get("results", {}).items()
        for r in results
        if (name, r["type"], r["hashed_secret"]) not in held
    )


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
    parser.add_argument("--write-baseline", action="store_true", help="regenerate the baseline from FILES")
    parser.add_argument("--fresh", action="store_true", help="also fail when the baseline is not FILES' scan")
    parser.add_argument("--tracked", action="store_true", help="scan what git tracks or would add, not FILES")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    if args.tracked:
        listed = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
        args.files = subprocess.run(listed, capture_output=True, text=True, check=True).stdout.splitlines()
    files = [name for name in args.files if Path(name).is_file()]
    fresh = fresh_baseline(files)
    if args.write_baseline:
        args.baseline.write_text(fresh)
        return 0
    bad = new_findings(fresh, args.baseline) + template_findings(files)
    if args.fresh and not bad and args.baseline.read_text() != fresh:
        bad.append(f"{args.baseline}: out of date (a finding was removed or moved): run `nox -s secrets-baseline`")
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
