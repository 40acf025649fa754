"""The ingestor's malformed-line log: one line a second, every other line counted."""

from __future__ import annotations

from structlog.testing import capture_logs

from perfwarden.ingest.receivers import Ingestor
from perfwarden.series.store import MetricStore
from perfwarden.testing import FakeClock


def test_suppressed_counts_every_malformed_line_not_shown() -> None:
    clock = FakeClock()
    ingestor = Ingestor(MetricStore(lambda _: 100, 100), 8192, clock)
    with capture_logs() as logs:
        ingestor.feed(b"bad:abc|ms\nworse:nan|ms\nok:1|ms\n")
        ingestor.commit()  # shown: the first; the second suppressed
        clock.advance(0.5)
        ingestor.feed(b"bad:x|ms\n")
        ingestor.commit()  # within the second: suppressed
        clock.advance(0.6)
        ingestor.feed(b"bad:y|ms\n")
        ingestor.commit()  # shown, with the one suppressed since the last shown
    shown = [e for e in logs if e["event"] == "ingest.malformed"]
    assert [(1, 2), (1, 4)] == [(e["suppressed"], e["malformed_total"]) for e in shown]


def test_a_failed_commit_loses_its_batch_only() -> None:
    """A bug that raises while a batch is stored (here: the store's hook) drops
    and counts that batch's lines, logs it, and the next batch goes in."""
    store = MetricStore(lambda _: 100, 100)
    ingestor = Ingestor(store, 8192, FakeClock())
    failing = [True]

    def hook(batch: object, now: float, offset: float) -> bool:
        if failing.pop() if failing else False:
            raise RuntimeError("broken hook")
        return False

    store.on_ingest = hook
    with capture_logs() as logs:
        ingestor.feed(b"a:1|ms\nb:2|ms\n")
        ingestor.commit()
        ingestor.feed(b"a:3|ms\n")
        ingestor.commit()
    assert ["ingest.commit_failed"] == [
        e["event"] for e in logs if e["event"].startswith("ingest.")
    ]
    counts = ingestor.counters.as_dict()
    assert (3, 1, 2) == (counts["received"], counts["accepted"], counts["dropped"])
    assert {"internal_error": 2} == counts["dropped_by_reason"]
    held = store.get("a|ms")
    assert held is not None
    assert [3.0] == held.window.values().tolist()
