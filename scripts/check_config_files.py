"""Fail on any YAML or TOML file that does not parse (used by `nox -s lint` and pre-commit).

Usage: python scripts/check_config_files.py FILE...   (files with other suffixes are ignored)"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import yaml


def problems(paths: list[str]) -> list[str]:
    bad = []
    for name in paths:
        path = Path(name)
        try:
            if path.suffix in (".yml", ".yaml"):
                list(yaml.safe_load_all(path.read_text()))
            elif path.suffix == ".toml":
                tomllib.loads(path.read_text())
        except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            bad.append(f"{name}: {exc}".replace("\n", " "))
    return bad


def main(argv: list[str]) -> int:
    bad = problems(argv)
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
