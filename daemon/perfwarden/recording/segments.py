"""The recording's file format: segments of independently compressed blocks.

A recording is a directory of segment files named ``<sequence>.pwrec`` (eight
digits, oldest first). A segment starts with an 8-byte magic and holds blocks::

    segment  = MAGIC block*
    MAGIC    = b"PWREC\x00\x03\n"   (version 2, b"PWREC\x00\x02\n", is read too)
    block    = "BLK1" u32 length u32 crc32(payload) payload     (little-endian)
    payload  = u32 meta_length zlib(meta) values
    meta     = u32 n_keys u32 n_chunks u32 n_values u32 keys_bytes
               keys (utf-8, "\n"-separated raw series keys)
               u32[n_chunks] key index   f64[n_chunks] arrival (unix time)
               f64[n_chunks] |T stamp (NaN: none)
               u32[n_chunks] value count
    values   = u8 width u8 decimals u8 zlibbed i64 offset u32 length data

The values are stored as cheaply as they allow (compressing float64 with zlib
costs ~100 - 300 ns a sample, ten times the rest of the recording): when every
value of the block is a decimal with at most 6 places (``87``, ``0.93``,
``1240.125``, what senders send) they are kept as unsigned integers ``value *
10**decimals - offset`` of 1 to 4 bytes (``width``), else as float64 (width 8);
either is zlib-compressed only when a probe of its first 8 KiB shrinks to half.
Decoding gives back exactly the values written (the integer form is used only
when it does).

A *chunk* is the values one series received in one ingest batch (with one ``|T``
stamp, if any). Two kinds of chunk have no values: an evaluation tick (the key
``""``) and, since version 3, the silences in force (a key that no series key can
be, :mod:`.silences`); a version 2 segment has no silence records and replays with
no silences, as before. A block is written whole or not at all as far as a reader
can tell: its length and CRC let :func:`valid_prefix` find where a segment torn by a
``kill -9`` stops being whole, and :func:`truncate_torn` cut it there on start.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

__all__ = [
    "MAGIC",
    "MAGICS",
    "SUFFIX",
    "Block",
    "BlockError",
    "decode_block",
    "encode_block",
    "iter_blocks",
    "segment_paths",
    "truncate_torn",
    "valid_prefix",
]

MAGIC: Final = b"PWREC\x00\x03\n"
#: The magics a reader accepts: this version's and version 2's (no silence records).
MAGICS: Final = frozenset({MAGIC, b"PWREC\x00\x02\n"})
SUFFIX: Final = ".pwrec"
_BLOCK: Final = struct.Struct("<4sII")
_BLOCK_MAGIC: Final = b"BLK1"
_RAW: Final = struct.Struct("<IIII")
_META_LENGTH: Final = struct.Struct("<I")
_VALUES: Final = struct.Struct("<BBBqI")
_MAX_DECIMALS: Final = 6
_PROBE: Final = 8192
_FLOAT: Final = 8
_WIDTHS: Final = frozenset({1, 2, 3, 4, _FLOAT})
#: Values are zlib-compressed only when a probe shrinks to this share or less.
_WORTH_IT: Final = 0.5
#: A block larger than this is corrupt (the writer's blocks are far smaller).
MAX_BLOCK: Final = 256 << 20


class BlockError(ValueError):
    """A block that cannot be read; ``offset`` is where it starts in its file."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message


@dataclass(frozen=True, slots=True)
class Block:
    """One decoded block: chunks as parallel arrays plus the key table."""

    keys: list[str]
    key_index: npt.NDArray[np.uint32]
    times: npt.NDArray[np.float64]
    stamps: npt.NDArray[np.float64]
    counts: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float64]


def encode_block(  # noqa: PLR0917 - the block's columns, in file order
    keys: Sequence[str],
    key_index: Sequence[int],
    times: Sequence[float],
    stamps: Sequence[float],
    counts: Sequence[int],
    values: Sequence[float] | npt.NDArray[np.float64],
) -> bytes:
    """The bytes of one block (header included)."""
    key_bytes = "\n".join(keys).encode("utf-8")
    meta = zlib.compress(
        b"".join(
            (
                _RAW.pack(len(keys), len(key_index), len(values), len(key_bytes)),
                key_bytes,
                np.asarray(key_index, dtype="<u4").tobytes(),
                np.asarray(times, dtype="<f8").tobytes(),
                np.asarray(stamps, dtype="<f8").tobytes(),
                np.asarray(counts, dtype="<u4").tobytes(),
            )
        ),
        1,
    )
    width, decimals, offset, data = _pack_values(np.asarray(values, dtype="<f8"))
    probe = data[:_PROBE]
    zlibbed = len(zlib.compress(probe, 1)) <= _WORTH_IT * len(probe)
    if zlibbed:
        data = zlib.compress(data, 1)
    payload = b"".join(
        (
            _META_LENGTH.pack(len(meta)),
            meta,
            _VALUES.pack(width, decimals, zlibbed, offset, len(data)),
            data,
        )
    )
    return _BLOCK.pack(_BLOCK_MAGIC, len(payload), zlib.crc32(payload)) + payload


def _pack_values(values: npt.NDArray[np.float64]) -> tuple[int, int, int, bytes]:
    """``(width, decimals, offset, bytes)``: small integers when exact, else f64."""
    if values.size:
        probe = values[:256]
        for decimals in range(_MAX_DECIMALS + 1):
            scale = 10.0**decimals
            if not np.array_equal(np.round(probe * scale) / scale, probe):
                continue
            scaled = np.round(values * scale)
            low, high = float(scaled.min()), float(scaled.max())
            span = high - low
            if span >= 2**32 or abs(low) >= 2**53:
                break
            width = next(w for w in (1, 2, 3, 4) if span < 2 ** (8 * w))
            ints = (scaled - low).astype(np.uint32)
            offset = int(low)
            back = _from_ints(ints, offset, decimals)  # exactly what decoding does
            if np.array_equal(back, values) and np.array_equal(
                np.signbit(back), np.signbit(values)
            ):
                return width, decimals, offset, _narrow(ints, width)
            break
    return _FLOAT, 0, 0, values.tobytes()


def _unpack_values(
    width: int, decimals: int, offset: int, data: bytes, *, count: int, at: int
) -> npt.NDArray[np.float64]:
    if width not in _WIDTHS or len(data) != width * count or decimals > _MAX_DECIMALS:
        raise BlockError(at, "block's values do not match their header")
    if width == _FLOAT:
        return np.frombuffer(data, "<f8", count).astype(np.float64)
    wide = np.zeros((count, 4), dtype=np.uint8)
    wide[:, :width] = np.frombuffer(data, np.uint8, count * width).reshape(-1, width)
    return _from_ints(wide.view("<u4").reshape(-1), offset, decimals)


def _narrow(ints: npt.NDArray[np.uint32], width: int) -> bytes:
    """The low ``width`` bytes of each value, as little-endian u32s."""
    as_bytes = ints.astype("<u4").view(np.uint8).reshape(-1, 4)
    return as_bytes[:, :width].tobytes()


def _from_ints(
    ints: npt.NDArray[Any], offset: int, decimals: int
) -> npt.NDArray[np.float64]:
    return (ints.astype(np.float64) + float(offset)) / 10.0**decimals


def decode_block(payload: bytes, offset: int = 0) -> Block:
    """Decode a block's payload (after its header); raises :class:`BlockError`."""
    try:
        (meta_length,) = _META_LENGTH.unpack_from(payload)
        meta_end = _META_LENGTH.size + meta_length
        raw = zlib.decompress(payload[_META_LENGTH.size : meta_end])
        width, decimals, zlibbed, value_offset, length = _VALUES.unpack_from(
            payload, meta_end
        )
        data = payload[meta_end + _VALUES.size :]
        if len(data) != length:
            raise BlockError(offset, "block's values are cut short")
        if zlibbed:
            data = zlib.decompress(data)
    except (struct.error, zlib.error) as exc:
        raise BlockError(offset, f"cannot decode: {exc}") from None
    if len(raw) < _RAW.size:
        raise BlockError(offset, "block too short")
    n_keys, n_chunks, n_values, key_bytes = _RAW.unpack_from(raw)
    expected = _RAW.size + key_bytes + n_chunks * 24
    if len(raw) != expected:
        raise BlockError(offset, f"block holds {len(raw)} bytes, expected {expected}")
    position = _RAW.size
    keys = raw[position : position + key_bytes].decode("utf-8", "replace").split("\n")
    if n_keys == 0:
        keys = []
    if len(keys) != n_keys:
        raise BlockError(offset, f"block names {len(keys)} keys, expected {n_keys}")
    position += key_bytes
    key_index = np.frombuffer(raw, "<u4", n_chunks, position)
    position += 4 * n_chunks
    times = np.frombuffer(raw, "<f8", n_chunks, position)
    position += 8 * n_chunks
    stamps = np.frombuffer(raw, "<f8", n_chunks, position)
    position += 8 * n_chunks
    counts = np.frombuffer(raw, "<u4", n_chunks, position)
    values = _unpack_values(
        width, decimals, value_offset, data, count=n_values, at=offset
    )
    if n_chunks and (int(key_index.max()) >= n_keys or int(counts.sum()) != n_values):
        raise BlockError(offset, "block's chunk table does not match its contents")
    return Block(
        keys,
        key_index.astype(np.uint32),
        times.astype(np.float64),
        stamps.astype(np.float64),
        counts.astype(np.uint32),
        values,
    )


def _read_header(file: BinaryIO, offset: int) -> tuple[int, int] | None:
    """``(length, crc)`` of the block at ``offset``; None at a clean end."""
    header = file.read(_BLOCK.size)
    if not header:
        return None
    if len(header) < _BLOCK.size:
        raise BlockError(offset, "torn block header")
    magic, length, crc = _BLOCK.unpack(header)
    if magic != _BLOCK_MAGIC:
        raise BlockError(offset, "not a block (bad magic)")
    if length > MAX_BLOCK:
        raise BlockError(offset, f"block length {length} is implausible")
    return length, crc


def iter_blocks(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(offset, payload)`` of each whole block with a good CRC; raises
    :class:`BlockError` at the first that is not (the caller says what to do)."""
    with path.open("rb") as file:
        if file.read(len(MAGIC)) not in MAGICS:
            raise BlockError(0, "not a perfwarden recording segment (bad magic)")
        offset = len(MAGIC)
        while True:
            header = _read_header(file, offset)
            if header is None:
                return
            length, crc = header
            payload = file.read(length)
            if len(payload) < length:
                raise BlockError(offset, "torn block (file ends inside it)")
            if zlib.crc32(payload) != crc:
                raise BlockError(offset, "block checksum mismatch")
            yield offset, payload
            offset += _BLOCK.size + length


def valid_prefix(path: Path) -> tuple[int, BlockError | None]:
    """How many leading bytes of a segment are whole blocks, and the first error."""
    end = len(MAGIC)
    try:
        for offset, payload in iter_blocks(path):
            end = offset + _BLOCK.size + len(payload)
    except BlockError as exc:
        return (0 if exc.offset == 0 else end), exc
    return end, None


def truncate_torn(path: Path) -> int:
    """Cut a segment after its last whole block; return the bytes removed."""
    size = path.stat().st_size
    keep, error = valid_prefix(path)
    if error is None:
        return 0
    if keep == 0:  # not even the magic: start the file over
        path.write_bytes(MAGIC)
        return size
    with path.open("r+b") as file:
        file.truncate(keep)
    return size - keep


def segment_paths(directory: Path) -> list[Path]:
    """The segments of a recording directory, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == SUFFIX)
