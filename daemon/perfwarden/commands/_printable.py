"""Terminal-safe text: control characters from the wire shown, never obeyed.

Metric names, tags and set members come from whoever can write to the metrics
socket. Printed raw, ``\\x1b]52;c;...\\x07`` writes the reader's clipboard on some
terminals, ``\\x1b]0;...`` retitles the window and ``\\x1b[2J`` clears it; bidi
overrides make text read differently than it is. So every command's text output
goes through :class:`EscapingWriter`, and ``top`` escapes the data it draws
(:func:`escaped`): C0 and C1 controls, DEL and the bidi and line-separator
characters become ``\\xNN`` / ``\\uNNNN``, while newline and tab stay (the commands'
own layout). JSON output needs nothing: ``json.dump`` already escapes them.
"""

from __future__ import annotations

import io
from typing import Any, Final, TextIO

__all__ = ["EscapingWriter", "escaped", "json_printable", "printable"]


def _table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)):
        table[code] = f"\\x{code:02x}"
    bidi = (0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
    for code in (*bidi, 0x2028, 0x2029):
        table[code] = f"\\u{code:04x}"
    del table[ord("\n")], table[ord("\t")]
    return table


_ESCAPES: Final = _table()
_LINE_ESCAPES: Final = {**_ESCAPES, ord("\n"): "\\n", ord("\t"): "\\t"}


def printable(text: str, *, lines: bool = True) -> str:
    """``text`` with its control characters escaped (``lines``: keep \\n and \\t)."""
    return text.translate(_ESCAPES if lines else _LINE_ESCAPES)


_JSON_ESCAPES: Final = {code: f"\\u{code:04x}" for code in _ESCAPES if code >= 0x20}


def json_printable(text: str) -> str:
    """JSON text written with ``ensure_ascii=False`` (to keep ✅ readable) with the
    controls JSON leaves raw (DEL, C1, bidi, line separators) as ``\\uNNNN``: still
    valid JSON, and nothing left for :class:`EscapingWriter` to turn into ``\\xNN``,
    which JSON does not read."""
    return text.translate(_JSON_ESCAPES)


def escaped(data: Any) -> Any:
    """``data`` (decoded JSON) with every string, keys too, escaped to one line."""
    if isinstance(data, str):
        return printable(data, lines=False)
    if isinstance(data, dict):
        return {escaped(k): escaped(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [escaped(v) for v in data]
    return data


class EscapingWriter(io.TextIOBase):
    """A text stream that escapes control characters on their way to ``target``."""

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self._target = target

    def write(self, text: str) -> int:
        """Write ``text`` escaped; returns ``len(text)`` as a text stream does."""
        self._target.write(printable(text))
        return len(text)

    def flush(self) -> None:
        """Flush the target."""
        self._target.flush()

    def isatty(self) -> bool:
        """Whether the target is a terminal."""
        return self._target.isatty()

    def fileno(self) -> int:
        """The target's descriptor."""
        return self._target.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The target's encoding."""
        return self._target.encoding
