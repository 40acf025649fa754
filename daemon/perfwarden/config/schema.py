"""The JSON Schema of ``perfwarden.yaml``, built from the configuration model.

One job: walk the frozen records of :mod:`perfwarden.config.model` (field names,
types, defaults, enums, the ``Annotated`` marks for durations and ``host:port``) and
return a JSON Schema (draft 2020-12) for editors: yaml-language-server completes
keys, shows each section's docstring and flags unknown keys and wrong types. The
model is the one source of truth; ``config/perfwarden.schema.json`` is this output,
checked in and shipped (``tests/unit/test_config_schema.py`` keeps it current)::

    python -m perfwarden.config.schema > config/perfwarden.schema.json

The schema says what a value *looks like*; ranges and cross-field rules (threshold
order, ``min <= initial <= max``) stay with ``perfwarden check-config``.

Mapping rules: a record is an object without other keys (``additionalProperties:
false``) whose properties are its fields, ``for_`` written ``for``; a field without
a default is required, except ``name``, which is the key of the mapping that holds
the record (``metrics``, ``knobs``, ``plugins``); ``Mapping[str, X]`` is an object
of ``X``; ``tuple[X, ...]`` an array; ``X | None`` also ``null``; an enum its
values; :data:`~perfwarden.config.model.INLINE` lets other keys stand beside the
record's own.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, Final

from perfwarden import __version__
from perfwarden.config.model import (
    DURATION,
    EXPIRY,
    HOST_PORT,
    INLINE,
    Config,
)

__all__ = ["SCHEMA_ID", "config_schema", "main"]

SCHEMA_ID: Final = "https://perfwarden.invalid/perfwarden.schema.json"
_DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
#: What parse_duration accepts as text (config/durations.py), for editors.
_DURATION_PATTERN: Final = (
    r"^\s*(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*(ms|s|m|h|d|w)?"
    r"|([0-9]+(ms|[wdhms]))+)\s*$"
)
_DURATION: Final = {
    "description": 'a duration: seconds, or "250ms", "5s", "2m", "1h", "1d", "1h30m"',
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": _DURATION_PATTERN},
    ],
}
_EXPIRY: Final = {
    "description": "a duration, or 0, off or false: never",
    "anyOf": [*_DURATION["anyOf"], {"const": "off"}, {"const": False}],
}
_HOST_PORT: Final = {
    "description": '"host:port", "[v6]:port" for IPv6',
    "type": "string",
    "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):[0-9]{1,5}$",
}
_MARKS: Final[dict[str, dict[str, Any]]] = {
    DURATION: _DURATION,
    EXPIRY: _EXPIRY,
    HOST_PORT: _HOST_PORT,
}
#: Fields of Config that are not YAML keys.
_NOT_KEYS: Final = frozenset({"source", "sha256"})


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a configuration file."""
    schema = _record(Config, keyed=False)
    schema["properties"]["version"] = {
        "description": "the format of this file",
        "const": Config().version,
    }
    schema["required"] = ["version"]
    return {
        "$schema": _DRAFT,
        "$id": SCHEMA_ID,
        "title": f"perfwarden.yaml (perfwarden {__version__})",
        **schema,
    }


def _record(cls: type[Any], *, keyed: bool) -> dict[str, Any]:
    """A dataclass as an object schema; *keyed*: its ``name`` is the mapping key."""
    hints = typing.get_type_hints(cls, include_extras=True)
    properties: dict[str, Any] = {}
    required: list[str] = []
    inline = False
    for field in dataclasses.fields(cls):
        if field.name in _NOT_KEYS or (keyed and field.name == "name"):
            continue
        hint = hints[field.name]
        if INLINE in _marks(hint):
            inline = True
            continue
        key = field.name.rstrip("_")
        properties[key] = _type(hint)
        no_default = (
            field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        )
        if no_default and not _optional(hint):
            required.append(key)
    schema: dict[str, Any] = {"type": "object"}
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split("\n\n")[0].split())
    schema["properties"] = properties
    if required:
        schema["required"] = required
    schema["additionalProperties"] = bool(inline)
    return schema


def _marks(hint: Any) -> tuple[object, ...]:
    if typing.get_origin(hint) is typing.Annotated:
        return tuple(hint.__metadata__)
    return ()


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint) and _is_union(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in {typing.Union, types.UnionType}


def _type(hint: Any) -> dict[str, Any]:
    """The schema of one annotation."""
    for mark in _marks(hint):
        if isinstance(mark, str) and mark in _MARKS:
            return dict(_MARKS[mark])
    if typing.get_origin(hint) is typing.Annotated:
        return _type(typing.get_args(hint)[0])
    if _is_union(hint):
        return {"anyOf": [_type(arg) for arg in typing.get_args(hint)]}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"enum": [member.value for member in hint]}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if hint is object:
        return {}
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _record(hint, keyed=False)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": _type(args[0])}
    if origin is Mapping or origin is dict:
        value = args[1]
        if dataclasses.is_dataclass(value) and isinstance(value, type):
            item = _record(value, keyed=True)
        else:
            item = _type(value)
        return {"type": "object", "additionalProperties": item}
    msg = f"no JSON Schema for {hint!r}: add a case or an Annotated mark"
    raise TypeError(msg)


def main() -> int:
    """Print the schema (``python -m perfwarden.config.schema``)."""
    json.dump(config_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
