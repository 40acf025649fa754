"""Silence records: the silences in force, noted in the recording with the samples.

A silence record is a chunk with no values whose key is :data:`SILENCES_PREFIX`
(ending in ``:``) followed by a JSON list of the silences in force from that moment
(each as ``Silence.as_dict()`` gives it: ``id``, ``metric``, ``matchers``,
``until``, ``created``, ``comment``). The recorder writes one on every addition,
removal or restore, and one at the start of every block once any silence was in
force, so a block read alone (a segment pruned or skipped before it, a hand-over
dropped) still knows them. No series key starts with the prefix: a series key's name
holds no ``:``.
Expiry is not recorded: each silence's ``until`` says when it ends.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["SILENCES_PREFIX", "decode_silences", "encode_silences", "is_silences"]

#: A series key's name never holds ``:``, so no series key starts with this.
SILENCES_PREFIX: Final = "\x1esilences:"


def encode_silences(active: list[dict[str, Any]]) -> str:
    """The record key for the silences ``active`` (one line: JSON escapes ``\\n``)."""
    return SILENCES_PREFIX + json.dumps(active, sort_keys=True, separators=(",", ":"))


def is_silences(key: str) -> bool:
    """Is this chunk key a silence record?"""
    return key.startswith(SILENCES_PREFIX)


def decode_silences(key: str) -> list[dict[str, Any]]:
    """The silences of a record key; raises ``ValueError`` when it is not one."""
    data = json.loads(key.removeprefix(SILENCES_PREFIX))
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        msg = "silence record is not a list of silences"
        raise ValueError(msg)
    return data
