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
