"""``python -m perfwarden.generate DIR``: write the man page and completions under DIR.

``DIR`` is a ``share/`` directory (the repository's ``share/``, checked in; or
``/usr/local/share``). ``--check`` writes nothing and exits 1 when a file differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perfwarden.generate.files import generated_files


def main(argv: list[str] | None = None) -> int:
    """Write (or check) the generated files; return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m perfwarden.generate")
    parser.add_argument("directory", type=Path, help="a share/ directory")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for relative, content in generated_files().items():
        path = args.directory / relative
        current = path.read_text() if path.is_file() else None
        if current == content:
            continue
        stale.append(str(path))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    for path in stale:
        print(f"{'stale' if args.check else 'wrote'} {path}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
