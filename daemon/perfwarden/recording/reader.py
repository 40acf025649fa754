"""Reading a recording back: its chunks in time order, problems reported, not raised.

A block that cannot be read (torn, bad checksum, undecodable) ends the reading of
its segment: it is reported through ``on_problem`` with the segment and the byte
offset, and the next segment is read. A chunk whose arrival time goes back by more
than :data:`CLOCK_SLACK` (the wall clock was set back) is reported and skipped;
smaller steps back are clock jitter and replayed at the previous time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, TypeAlias

import numpy as np
import numpy.typing as npt

from perfwarden.recording.segments import (
    BlockError,
    decode_block,
    iter_blocks,
    segment_paths,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


__all__ = ["CLOCK_SLACK", "RecordedChunk", "Values", "read_recording"]

#: Seconds a chunk's time may go back (wall clock slew) before it is skipped.
CLOCK_SLACK: Final = 1.0

#: ``(arrival, raw key, values, |T stamp or None)``; the key ``""`` marks a tick,
#: a key starting ``SILENCES_PREFIX`` is a silence record (recording.silences).
#: Values are a list, or a read-only float64 array for chunks above ``_SMALL``.
Values: TypeAlias = list[float] | npt.NDArray[np.float64]
RecordedChunk = tuple[float, str, Values, "float | None"]
_SMALL: Final = 32


def read_recording(
    directory: Path,
    on_problem: Callable[[Path, str, str], None],
    on_bytes: Callable[[int], None] | None = None,
    since: float | None = None,
) -> Iterator[RecordedChunk]:
    """Every chunk of every segment in ``directory``, oldest first; segments last
    written before ``since`` (unix seconds) are skipped unread: a block is written
    after its chunks arrived, so such a segment holds nothing later."""
    last = -math.inf
    for path in segment_paths(directory):
        if since is not None and _modified(path) < since:
            continue
        blocks = iter_blocks(path)
        while True:
            try:
                offset, payload = next(blocks)
                block = decode_block(payload, offset)
            except StopIteration:
                break
            except BlockError as exc:
                on_problem(path, f"byte {exc.offset}", f"{exc.message}; rest skipped")
                break
            except OSError as exc:
                on_problem(path, "", f"cannot read: {exc.strerror or exc}")
                break
            if on_bytes is not None:
                on_bytes(len(payload))
            keys = block.keys
            values = block.values
            start = 0
            for index, at, stamp, count in zip(
                block.key_index.tolist(),
                block.times.tolist(),
                block.stamps.tolist(),
                block.counts.tolist(),
                strict=True,
            ):
                end = start + count
                # Large chunks stay numpy views: the window appends them without
                # a conversion; small ones go faster as lists (its small path).
                chunk_values = (
                    values[start:end] if count > _SMALL else values[start:end].tolist()
                )
                start = end
                if at < last:
                    if last - at > CLOCK_SLACK:
                        on_problem(
                            path,
                            f"byte {offset}",
                            f"time {at:.3f} is {last - at:.3f}s before the previous"
                            " chunk's; skipped",
                        )
                        continue
                    at = last  # noqa: PLW2901 - jitter: replayed in order
                last = at
                yield (
                    at,
                    keys[index],
                    chunk_values,
                    None if math.isnan(stamp) else stamp,
                )


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return math.inf  # let the reading report it
