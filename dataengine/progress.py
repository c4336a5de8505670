"""One live progress display per phase: documents/s, kept %, ETA.

On a terminal it is a tqdm bar over the input bytes (so the ETA holds however large the documents are);
elsewhere (stderr is a log file, a CI pipe) a line every `interval` seconds through logging, since a
bar redrawn with carriage returns makes a log unreadable.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time

log = logging.getLogger("dataengine.progress")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else (f"{seconds // 60}:{seconds % 60:02d}")
    )


class PhaseProgress:
    """Counts documents in and kept and input bytes done; shows them as a bar or as periodic lines."""

    def __init__(self, desc: str, total_bytes: int, enabled: bool = True, interval: float = 10.0):
        self.desc, self.total = desc, max(1, total_bytes)
        self.docs = self.kept = self.done = 0
        self.started = self._shown = time.monotonic()
        self.interval = interval
        self.enabled = enabled
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            # a terminal that reports its size as 0 x 0 (some IDE, container and `script` ptys) makes tqdm
            # draw nothing at all; shutil falls back to 80 x 24 there
            size = shutil.get_terminal_size()
            self._bar = tqdm(
                total=self.total,
                desc=desc,
                unit="B",
                unit_scale=True,
                ncols=size.columns,
                nrows=size.lines,
                mininterval=0.5,
                bar_format="{desc}: {percentage:3.0f}%|{bar:10}| {n_fmt}B/{total_fmt}B ETA {remaining}{postfix}",
            )

    def update(self, docs: int, kept: int, done_bytes: int = 0) -> None:
        """`docs` more documents read, `kept` of them kept, `done_bytes` more input bytes finished."""
        self.docs += docs
        self.kept += kept
        self.done = min(self.total, self.done + done_bytes)
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self._rates(), refresh=False)
            self._bar.update(done_bytes)
        elif time.monotonic() - self._shown >= self.interval:
            self._shown = time.monotonic()
            log.info("%s", self.line())

    def _rates(self) -> str:
        elapsed = max(1e-9, time.monotonic() - self.started)
        kept = f"{100 * self.kept / self.docs:.0f}%" if self.docs else "n/a"
        return f"{self.docs} docs, {self.docs / elapsed:.0f} docs/s, kept {kept}"

    def line(self) -> str:
        """'phase 1: 42% of 96.0 MB, 5120 docs, 812 docs/s, kept 61%, ETA 0:09'."""
        elapsed = time.monotonic() - self.started
        fraction = self.done / self.total
        eta = _duration(elapsed * (1 - fraction) / fraction) if fraction else "?"
        return f"{self.desc}: {100 * fraction:.0f}% of {self.total / 1e6:.1f} MB, {self._rates()}, ETA {eta}"

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.docs:
            log.info("%s (done in %s)", self.line(), _duration(time.monotonic() - self.started))

    def __enter__(self) -> PhaseProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
