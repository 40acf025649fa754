"""``python -m perfwarden``: the same as the ``perfwarden`` console script."""

from __future__ import annotations

import sys

from perfwarden.cli import main

if __name__ == "__main__":
    sys.exit(main())
