"""Drop-in files: ``conf.d/*.yaml`` beside the main config, merged in name order.

One job: find the drop-ins, merge their composed YAML into the main document, and
give the content digest of the whole set. A drop-in is a partial config::

    /etc/perfwarden/perfwarden.yaml          the main file
    /etc/perfwarden/conf.d/10-web.yaml       metrics: {web_latency: {bound: upper}}
    /etc/perfwarden/conf.d/20-local.yaml     metrics: {web_latency: {warning: 250}}

Mappings merge key by key, recursively (``metrics.web_latency`` ends up with both
``bound`` and ``warning``); any other value (a scalar, a list such as
``processes``) replaces the earlier one whole. Files are taken in byte order of
their names; names starting with ``.`` and other suffixes are ignored (an editor's
``.10-web.yaml.swp`` never counts).

Every node of a drop-in keeps its file: its marks are replaced by
:class:`FileMark`, so :func:`perfwarden.config.yaml_tree.line_of` reports a problem
as ``conf.d/20-local.yaml:3``, not as a line of the main file.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import TYPE_CHECKING, Final

from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable

__all__ = [
    "DROP_IN_DIR",
    "FileMark",
    "config_digest",
    "digest_of",
    "drop_in_paths",
    "mark_file",
    "merge",
]

#: The drop-in directory's name, beside the main file.
DROP_IN_DIR: Final = "conf.d"
_SUFFIX: Final = ".yaml"
_STR_TAG: Final = "tag:yaml.org,2002:str"


class FileMark(Mark):
    """A node's position in a drop-in file (``name`` is the file's path)."""


def drop_in_paths(main: str | os.PathLike[str]) -> list[pathlib.Path]:
    """The drop-ins of config file *main*, in the order they apply."""
    directory = pathlib.Path(main).parent / DROP_IN_DIR
    try:
        entries = list(directory.iterdir())
    except OSError:  # no conf.d (the usual case), or unreadable: nothing to merge
        return []
    return sorted(
        (
            path
            for path in entries
            if path.name.endswith(_SUFFIX)
            and not path.name.startswith(".")
            and path.is_file()
        ),
        key=lambda path: path.name.encode(),
    )


def digest_of(main: bytes, drop_ins: Iterable[tuple[str, bytes]]) -> str:
    """The sha256 of a config set: the main file's bytes alone when there are no
    drop-ins, so that a single file's digest is ``sha256sum``'s."""
    digest = hashlib.sha256(main)
    for name, data in drop_ins:
        digest.update(b"\0" + pathlib.Path(name).name.encode() + b"\0")
        digest.update(data)
    return digest.hexdigest()


def config_digest(main: pathlib.Path) -> str | None:
    """:func:`digest_of` the files as they are now; None if one cannot be read."""
    try:
        data = main.read_bytes()
        drop_ins = [(str(path), path.read_bytes()) for path in drop_in_paths(main)]
    except OSError:
        return None
    return digest_of(data, drop_ins)


def mark_file(root: Node, path: str) -> None:
    """Give every node under *root* a :class:`FileMark` naming *path*."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias: the same node twice
            continue
        seen.add(id(node))
        start = node.start_mark
        if start is not None and not isinstance(start, FileMark):
            node.start_mark = FileMark(
                path, start.index, start.line, start.column, None, 0
            )
        if isinstance(node, MappingNode):
            for key, value in node.value:
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


def merge(base: MappingNode, over: MappingNode) -> MappingNode:
    """*base* with *over*'s keys applied: mappings merge, anything else replaces.

    A key given twice within *over* is kept twice, so that the duplicate is
    reported as it would be in one file.
    """
    result = list(base.value)
    position = {
        _name(key): index
        for index, (key, _value) in enumerate(result)
        if _name(key) is not None
    }
    replaced: set[str] = set()
    for key, value in over.value:
        name = _name(key)
        if name is None or name not in position or name in replaced:
            result.append((key, value))
            continue
        replaced.add(name)
        index = position[name]
        old_key, old_value = result[index]
        if isinstance(old_value, MappingNode) and isinstance(value, MappingNode):
            result[index] = (old_key, merge(old_value, value))
        else:
            result[index] = (key, value)
    return MappingNode(
        base.tag, result, base.start_mark, base.end_mark, flow_style=base.flow_style
    )


def _name(key: Node) -> str | None:
    if isinstance(key, ScalarNode) and key.tag == _STR_TAG:
        return str(key.value)
    return None
