"""Progress off a terminal: periodic lines through logging (a bar's carriage returns would garble a log)."""

from __future__ import annotations

import logging
import re

from dataengine.progress import PhaseProgress


def test_lines_every_interval_with_rate_kept_share_and_eta(caplog):
    caplog.set_level(logging.INFO, logger="dataengine.progress")
    with PhaseProgress("phase 1", total_bytes=4_000_000, interval=0.0) as bar:
        assert bar._bar is None  # pytest's stderr is not a terminal
        bar.update(100, 60, 1_000_000)
        bar.update(100, 90, 1_000_000)
    lines = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(r"phase 1: 25% of 4\.0 MB, 100 docs, \d+ docs/s, kept 60%, ETA \d+:\d\d", lines[0])
    assert lines[1].startswith("phase 1: 50% of 4.0 MB, 200 docs") and "kept 75%" in lines[1]
    assert re.search(r"\(done in \d+:\d\d\)$", lines[-1])


def test_quiet_and_silent_until_the_interval(caplog):
    caplog.set_level(logging.INFO, logger="dataengine.progress")
    with PhaseProgress("phase 1", 10, enabled=False) as bar:
        bar.update(5, 5, 10)
    with PhaseProgress("dedup", 10, interval=3600) as bar:
        bar.update(5, 4, 5)  # within the interval: nothing until the closing line
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["dedup: 50% of 0.0 MB"]
