"""The DogStatsD line parser: bytes in, grouped samples and per-reason counts out.

Wire format (one metric per line, several lines per datagram, ``\\n`` between)::

    <name>:<value>[:<value>...]|<type>[|@<sample_rate>][|#<tag>[:<v>][,<tag>...]][|T<unix_ts>]

    type  g gauge, ms timing, h histogram, d distribution  -> every value is a sample
          c count  -> summed per evaluation interval (scaled by 1/sample_rate)
          s set    -> values are members, counted distinct per interval

Events (``_e{...``) and service checks (``_sc|...``) are counted as *ignored*.
A ``|T<unix_ts>`` field (whole seconds) makes the line's samples *stamped*: they go
to :attr:`Batch.stamped` with their time instead of :attr:`Batch.values`, and a line
whose stamp lies outside :attr:`Batch.stamp_bounds` (when set) is counted in
:attr:`Batch.skewed` as ``late_timestamp`` or ``future_timestamp`` and not accepted.
A stamp that is not a whole number of seconds is malformed (``bad_timestamp``).
Extension fields that real clients add (``|c:<container-id>``, ``|e:<external>``,
``|card:...`` and any other ``|<letters>:`` field) are skipped.

The parser does no I/O and never raises: every line that is not empty is counted
exactly once as accepted, ignored, malformed (with a reason) or skewed, so the socket
layer can keep ``received = accepted + malformed + ignored + dropped``.

Signed gauges: by default (DogStatsD's reading) ``m:-5|g`` is the value -5. With
``gauge_deltas`` (Etsy statsd's reading, ``ingest.signed_gauges: delta``) a gauge
value written with a sign changes the series' current value: it adjusts the last
value of the same key in the batch, else it is summed into ``Batch.gauge_deltas``
for the store to add to the series' latest sample (or 0). So pystatsd's
``m:0|g`` + ``m:-5|g`` for an absolute -5 is one sample, -5. Lines with several
values are read as absolute values in both modes.

Samples are grouped per *raw series key* (``"name|type|#tags"``, tags as sent: the
store sorts them once per new key) into plain lists, or appended to the store's
sinks directly (``sinks``, ``routes``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from perfwarden.ingest.batch import Batch, MetricType, RawKey, Sink

if TYPE_CHECKING:
    from collections.abc import Mapping

    from perfwarden.ingest.routes import Routes

__all__ = [
    "MALFORMED_REASONS",
    "MAX_ABS_VALUE",
    "Batch",
    "MetricType",
    "RawKey",
    "parse",
    "set_tag_limits",
    "split_raw_key",
]


#: Every reason a line can be counted as malformed, in the order they are checked.
MALFORMED_REASONS: Final = (
    "not_utf8",
    "too_long",
    "no_type",
    "empty_name",
    "bad_name",
    "no_value",
    "bad_type",
    "bad_sample_rate",
    "bad_timestamp",
    "bad_field",
    "too_many_tags",
    "bad_tags",
    "bad_value",
    "non_finite",
    "out_of_range",
)

_SAMPLE_TYPES: Final = frozenset({"g", "ms", "h", "d", "c"})
_NAME_FORBIDDEN: Final = frozenset(" \t\r\x00")
_MAX_FIELD_CACHE: Final = 4096
#: No direct appends, no routes (never written: a plain dict's ``get`` is cheapest).
_NO_SINKS: Final[Mapping[RawKey, Sink]] = {}
_NO_ROUTES: Final[dict[str, dict[str, Sink]]] = {}
#: Larger magnitudes are refused: their squares would overflow the running moments.
MAX_ABS_VALUE: Final = 1e100


# Parsed trailing fields ("ms|@0.5|#a:b") -> (type, sample rate, key suffix) or a
# malformed reason. Applications repeat the same suffix on nearly every line, so a
# small cache turns field parsing into one dict lookup.
_FieldInfo = tuple[str, float, str] | str
_field_cache: dict[str, _FieldInfo] = {}
#: The longest tag set (``ingest.max_tag_bytes``): checked here, once per distinct
#: suffix thanks to the cache, so the limit costs the hot path nothing.
_max_tag_bytes = 1024
#: The most tags a line may carry (``ingest.max_tags``), checked the same way.
_max_tags = 32


def set_tag_limits(max_bytes: int, max_tags: int) -> None:
    """Set the longest tag set and the most tags a line may carry (caches rebuilt)."""
    global _max_tag_bytes, _max_tags, _fast_size, _epoch  # noqa: PLW0603 - caches
    if (max_bytes, max_tags) != (_max_tag_bytes, _max_tags):
        _max_tag_bytes, _max_tags = max_bytes, max_tags
        _field_cache.clear()
        _fast_keys.clear()
        _fast_size = 0
        _epoch += 1


def _parse_fields(rest: str) -> _FieldInfo:
    type_, _, fields = rest.partition("|")
    if type_ not in _SAMPLE_TYPES and type_ != "s":
        return "bad_type"
    rate = 1.0
    tags = ""
    if fields:
        for part in fields.split("|"):
            head = part[:1]
            if head == "@":
                try:
                    rate = float(part[1:])
                except ValueError:
                    return "bad_sample_rate"
                if not 0.0 < rate <= 1.0:
                    return "bad_sample_rate"
            elif head == "#":
                tags = part[1:]
                if (
                    len(tags) > _max_tag_bytes
                    or len(tags.encode()) > _max_tag_bytes
                    or tags.count(",") >= _max_tags
                ):
                    return "too_many_tags"
                if "\x00" in tags:
                    return "bad_tags"
            elif head == "T":
                if not part[1:].isdigit():
                    return "bad_timestamp"
            elif ":" in part and part.partition(":")[0].isalpha():
                continue  # |c:container, |e:external, |card:... and future extensions
            else:
                return "bad_field"
    suffix = f"{type_}|#{tags}" if tags else type_
    return (type_, rate, suffix)


def _split_stamp(rest: str) -> tuple[str, int | None]:
    """Take the ``|T<unix_ts>`` field out of the trailing fields: ``(rest without
    it, stamp)``; the stamp is ``-1`` when the field is not a whole number of
    seconds or is given twice. Kept out of the field cache, where every new second
    would be a new entry."""
    head, *parts = rest.split("|")
    kept = [head]
    stamp: int | None = None
    for part in parts:
        if part[:1] != "T":
            kept.append(part)
            continue
        digits = part[1:]
        if stamp is not None or not (digits.isascii() and digits.isdigit()):
            stamp = -1
        else:
            stamp = int(digits)
    return "|".join(kept), stamp


def _fields(rest: str) -> _FieldInfo:
    info = _field_cache.get(rest)
    if info is None:
        if len(_field_cache) >= _MAX_FIELD_CACHE:
            _field_cache.clear()
        info = _field_cache[rest] = _parse_fields(rest)
    return info


# The fast path: trailing fields -> {metric name -> raw key} for every (fields, name)
# pair already accepted once as a plain single-value sample (types g, ms, h, d, and
# c without a sample rate). A line whose fields and name are found here needs only
# float() and a range check; anything else takes the full checks of _parse_lines.
_fast_keys: dict[str, dict[str, RawKey]] = {}
_fast_size = 0
#: The gauge reading the fast path was learned under (gauges are not learned with
#: deltas on, since a sign changes what their value means).
_fast_deltas = False
_MAX_FAST_KEYS: Final = 16384
#: Changes whenever the fast path's cache is emptied for a new reading of lines
#: (tag limits, the gauge reading): routes learned before are void.
_epoch = 0


def _learn(rest: str, name: str, key: RawKey) -> None:
    global _fast_size  # noqa: PLW0603 - a module-level cache, like _field_cache
    names = _fast_keys.get(rest)
    if names is not None and name in names:
        return
    if _fast_size >= _MAX_FAST_KEYS:
        _fast_keys.clear()
        _fast_size = 0
        names = None
    if names is None:
        names = _fast_keys[rest] = {}
    names[name] = key
    _fast_size += 1


def split_raw_key(key: RawKey) -> tuple[str, str, str]:
    """Split a raw key into ``(name, type, raw_tags)``."""
    name, _, rest = key.partition("|")
    type_, _, tags = rest.partition("|#")
    return name, type_, tags


def parse(
    data: bytes | bytearray | memoryview,
    batch: Batch,
    max_line: int,
    *,
    gauge_deltas: bool = False,
    sinks: Mapping[RawKey, Sink] = _NO_SINKS,
    routes: Routes | None = None,
) -> None:
    """Parse one datagram (or a chunk of complete lines) into ``batch``.

    Empty lines are skipped and not counted; every other line is counted once in
    ``batch.received`` and once as accepted, ignored or malformed. Never raises.
    ``gauge_deltas`` reads signed gauge values as changes (see the module notes).
    ``sinks``: raw key -> an array that a plain sample of that key is appended to
    instead of :attr:`Batch.values` (the store's direct appends,
    :mod:`perfwarden.series.direct`); such lines count as accepted all the same.
    ``routes``: where the parser remembers ``sinks`` (:mod:`perfwarden.ingest.routes`).
    """
    global _fast_deltas, _fast_size, _epoch  # noqa: PLW0603 - module-level caches
    if gauge_deltas is not _fast_deltas:
        # Gauge keys learned for the fast path read every value as absolute.
        _fast_keys.clear()
        _fast_size = 0
        _fast_deltas = gauge_deltas
        _epoch += 1
    if routes is not None and routes.epoch != _epoch:
        routes.clear()
        routes.epoch = _epoch
    try:
        text = str(data, "utf-8")
    except UnicodeDecodeError:
        _parse_undecodable(bytes(data), batch, max_line, sinks)
        return
    lines = text.split("\n")
    if "\r" in text or (len(text) > max_line and max(map(len, lines)) > max_line):
        _parse_lines(lines, batch, max_line, sinks, learn=False)
    else:
        _parse_fast(lines, batch, max_line, sinks, routes)


def _parse_undecodable(
    data: bytes, batch: Batch, max_line: int, sinks: Mapping[RawKey, Sink]
) -> None:
    for raw in data.split(b"\n"):
        if not raw or raw == b"\r":
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            batch.received += 1
            _malformed(batch, "not_utf8", raw.decode("utf-8", "replace"))
            continue
        _parse_lines(line.split("\n"), batch, max_line, sinks, learn=False)


def _malformed(batch: Batch, reason: str, line: str) -> None:
    batch.malformed[reason] = batch.malformed.get(reason, 0) + 1
    if batch.example is None:
        batch.example = (reason, line[:200])


def _stamp_in_bounds(batch: Batch, stamp: int) -> bool:
    """True when ``stamp`` is acceptable; else the line is counted as skewed."""
    bounds = batch.stamp_bounds
    if bounds is None or bounds[0] <= stamp <= bounds[1]:
        return True
    reason = "late_timestamp" if stamp < bounds[0] else "future_timestamp"
    batch.skewed[reason] = batch.skewed.get(reason, 0) + 1
    return False


def _parse_fast(
    lines: list[str],
    batch: Batch,
    max_line: int,
    sinks: Mapping[RawKey, Sink],
    routes: Routes | None,
) -> None:
    """Lines known to hold no ``\\r`` and none longer than ``max_line``."""
    values = batch.values
    bucket_of = values.get
    sink_of = sinks.get
    names_of = _fast_keys.get
    routes_of = (_NO_ROUTES if routes is None else routes.table).get
    # Locals, not the module constant: "-MAX_ABS_VALUE" in the loop would load
    # a global and make a new float on every line.
    lowest, highest = -MAX_ABS_VALUE, MAX_ABS_VALUE
    skipped = 0
    for line in lines:
        head, _, rest = line.partition("|")
        name, _, raw_value = head.partition(":")
        # Where a known plain sample goes: a routed list, else its raw key.
        routed = routes_of(rest)
        target = None if routed is None else routed.get(name)
        key = ""
        if target is None:
            names = names_of(rest)
            key = "" if names is None else names.get(name, "")
        if target is not None or key:
            try:
                value = float(raw_value)
            except ValueError:
                pass
            else:
                # False for NaN and infinities too; float() reads "1_0" as 10,
                # statsd does not: such a line takes the full checks.
                if lowest <= value <= highest and "_" not in raw_value:
                    if key:
                        # A key has a bucket in this batch or a sink, not both.
                        bucket: list[float] | Sink | None = bucket_of(key)
                        if bucket is None:
                            bucket = sink_of(key)
                            if bucket is None:
                                values[key] = [value]
                                continue
                            if routes is not None:
                                routes.add(rest, name, bucket)
                        bucket.append(value)
                    elif target is not None:
                        target.append(value)
                    continue
        # Not a known plain sample: full checks (and learn it if it is one).
        skipped += 1
        if line:
            _parse_lines([line], batch, max_line, sinks, learn=True)
    fast = len(lines) - skipped
    batch.received += fast
    batch.accepted += fast


def _add_delta(batch: Batch, key: RawKey, delta: float) -> None:
    """A signed gauge in delta mode: adjust the key's last value in this batch, or
    leave the change for the store (to add to the series' latest value)."""
    bucket = batch.values.get(key)
    if bucket:
        bucket[-1] += delta
    else:
        batch.gauge_deltas[key] = batch.gauge_deltas.get(key, 0.0) + delta
    # One more line than values for the key (lines_for stays exact).
    batch.extra_values[key] = batch.extra_values.get(key, 0) - 1


def _parse_lines(
    lines: list[str],
    batch: Batch,
    max_line: int,
    sinks: Mapping[RawKey, Sink],
    *,
    learn: bool,
) -> None:
    values = batch.values
    isfinite = math.isfinite
    received = accepted = 0
    for line in lines:
        if not line:
            continue
        if line[-1] == "\r":
            line = line[:-1]  # noqa: PLW2901 - tolerate CRLF senders
            if not line:
                continue
        received += 1
        if len(line) > max_line:
            _malformed(batch, "too_long", line)
            continue
        head, sep, rest = line.partition("|")
        if not sep:
            _malformed(batch, "no_type", line)
            continue
        if head[:1] == "_" and (head.startswith("_e{") or head == "_sc"):
            batch.ignored += 1
            continue
        stamp = None
        if "|T" in rest:
            rest, stamp = _split_stamp(rest)
        info = _fields(rest)
        if isinstance(info, str):
            _malformed(batch, info, line)
            continue
        if stamp is not None and stamp < 0:
            _malformed(batch, "bad_timestamp", line)
            continue
        type_, rate, suffix = info
        name, sep, raw_values = head.partition(":")
        if not name:
            _malformed(batch, "empty_name", line)
            continue
        if not sep or not raw_values:
            _malformed(batch, "no_value", line)
            continue
        if not _NAME_FORBIDDEN.isdisjoint(name) or "@" in name or "#" in name:
            _malformed(batch, "bad_name", line)
            continue
        key = f"{name}|{suffix}"
        if type_ == "s":
            members = raw_values.split(":")
            if "" in members:
                _malformed(batch, "no_value", line)
                continue
            # A set counts the members of the interval they arrive in; its stamp
            # is only checked.
            if stamp is not None and not _stamp_in_bounds(batch, stamp):
                continue
            batch.members.setdefault(key, []).extend(members)
            if len(members) > 1:
                batch.extra_values[key] = (
                    batch.extra_values.get(key, 0) + len(members) - 1
                )
            accepted += 1
            continue
        if "_" in raw_values:  # float() would read "1_0" as 10
            _malformed(batch, "bad_value", line)
            continue
        if ":" not in raw_values:
            try:
                value = float(raw_values)
            except ValueError:
                _malformed(batch, "bad_value", line)
                continue
            if not isfinite(value):
                _malformed(batch, "non_finite", line)
                continue
            if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:
                _malformed(batch, "out_of_range", line)
                continue
            if type_ == "g" and _fast_deltas and raw_values[0] in "+-":
                _add_delta(batch, key, value)
                accepted += 1
                continue
            if rate != 1.0 and type_ == "c":
                value /= rate
            elif learn and stamp is None and not (type_ == "g" and _fast_deltas):
                _learn(rest, name, key)
            if stamp is not None:
                if _stamp_in_bounds(batch, stamp):
                    batch.stamped.setdefault(key, []).append((stamp, value))
                    accepted += 1
                continue
            # The fast path's lines of this key go to its sink: keep the order
            # (but not a gauge's while signed ones are changes, kept apart).
            bucket: list[float] | Sink | None = (
                None if type_ == "g" and _fast_deltas else sinks.get(key)
            )
            if bucket is None:
                bucket = values.get(key)
            if bucket is None:
                values[key] = [value]
            else:
                bucket.append(value)
            accepted += 1
            continue
        try:
            many = [float(v) for v in raw_values.split(":")]
        except ValueError:
            _malformed(batch, "bad_value", line)
            continue
        if not all(isfinite(v) for v in many):
            _malformed(batch, "non_finite", line)
            continue
        if not all(-MAX_ABS_VALUE <= v <= MAX_ABS_VALUE for v in many):
            _malformed(batch, "out_of_range", line)
            continue
        if rate != 1.0 and type_ == "c":
            many = [v / rate for v in many]
        if stamp is not None:
            if not _stamp_in_bounds(batch, stamp):
                continue
            batch.stamped.setdefault(key, []).extend((stamp, v) for v in many)
        else:
            sink = None if type_ == "g" and _fast_deltas else sinks.get(key)
            if sink is not None:  # as for one value, above
                sink.extend(many)
                accepted += 1
                continue
            values.setdefault(key, []).extend(many)
        batch.extra_values[key] = batch.extra_values.get(key, 0) + len(many) - 1
        accepted += 1
    batch.received += received
    batch.accepted += accepted
