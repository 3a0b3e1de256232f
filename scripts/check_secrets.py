"""Secret scan for `nox -s lint` and pre-commit: detect-secrets over the given files, against the committed
.secrets.baseline, which is only READ (detect-secrets-hook rewrites it to track line numbers, which would make
CI fail on a clean checkout).  Exit 1 and name file:line:type for every finding the baseline does not hold.

The baseline carries the plugin and filter settings, including the project's placeholder rules:
  --exclude-secrets '^mv-os/'            Secrets Manager NAMES (env/environments.toml), not values
  --exclude-secrets '^<[^>]*>$'          template placeholders such as <from Secrets Manager: …>
  --exclude-lines   'postgres:postgres@(localhost|127.0.0.1)' and 'POSTGRES_PASSWORD: postgres'
                                         the seed's documented local-only database default
A false positive is allowed inline with `# pragma: allowlist secret` and a reason on that line.  No network:
detect-secrets' optional verification against live services is never enabled.

Usage: python scripts/check_secrets.py [--baseline .secrets.baseline] FILE..."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detect_secrets.core import baseline
from detect_secrets.core.secrets_collection import SecretsCollection


def new_findings(files: list[str], baseline_path: Path) -> list[str]:
    known = baseline.load(baseline.load_from_file(str(baseline_path)), str(baseline_path))  # also sets plugins
    found = SecretsCollection()
    for name in files:
        if Path(name).is_file() and Path(name).resolve() != baseline_path.resolve():
            found.scan_file(name)
    return sorted(f"{filename}:{secret.line_number}: {secret.type}" for filename, secret in found - known)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=Path(".secrets.baseline"))
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    bad = new_findings(args.files, args.baseline)
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
