"""Which generated file goes where: the ``share/`` tree installed with the wheel.

The paths are the ones shells and ``man`` search under a prefix: installed into a
virtual environment they land in ``$VIRTUAL_ENV/share/...``; a distribution package
(or ``python -m perfwarden.generate /usr/local/share``) puts them in the system's.
"""

from __future__ import annotations

from typing import Final

from perfwarden.generate.commands import read_cli
from perfwarden.generate.completion import bash, fish, zsh
from perfwarden.generate.manpage import manpage

__all__ = ["PATHS", "generated_files"]

#: Path under ``share/`` of each generated file.
PATHS: Final = {
    "man": "man/man1/perfwarden.1",
    "bash": "bash-completion/completions/perfwarden",
    "zsh": "zsh/site-functions/_perfwarden",
    "fish": "fish/vendor_completions.d/perfwarden.fish",
}


def generated_files() -> dict[str, str]:
    """Path under ``share/`` -> content, for every generated file."""
    top = read_cli()
    return {
        PATHS["man"]: manpage(top),
        PATHS["bash"]: bash(top),
        PATHS["zsh"]: zsh(top),
        PATHS["fish"]: fish(top),
    }
