"""Files generated from the ``perfwarden`` argparse parser: completions and man page.

:mod:`.commands` reads :func:`perfwarden.cli.build_parser` into a small tree of
commands and options; :mod:`.completion` writes bash, zsh and fish completion
scripts from it and :mod:`.manpage` the ``perfwarden(1)`` page. ``python -m
perfwarden.generate share`` writes all four under ``share/`` (checked in and
installed with the wheel as data files); ``perfwarden completion SHELL`` prints one
script. May import :mod:`perfwarden.cli` and the standard library, nothing of the
daemon.
"""
