"""``perfwarden completion SHELL``: print the bash, zsh or fish completion script."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from perfwarden.generate.commands import read_cli
from perfwarden.generate.completion import SHELLS

if TYPE_CHECKING:
    import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Write the script to stdout; exit 0."""
    sys.stdout.write(SHELLS[args.shell](read_cli()))
    return 0
