"""Stop requests: a preempted job checkpoints at the next step boundary and exits cleanly.

SIGTERM (what torchrun, Kubernetes and Slurm send before killing) and SIGUSR1 (Slurm's `--signal`
warning) set a flag; so does a file RUN/STOP, which is how `train.ray_launch` passes the signal on
(Ray Train runs the loop outside the main thread, where Python cannot take signals). Every rank adds
its flag into one all-reduce, so all ranks stop after the same step and save one checkpoint together.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

STOP_FILE = "STOP"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    def __init__(self, run_dir: Path, watch_file: bool):
        self.stop_file = run_dir / STOP_FILE
        self.watch_file = watch_file  # rank 0 only: one stat per step
        self.reason: str | None = None
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.reason = signal.Signals(signum).name

    def local(self) -> bool:
        """This process was asked to stop (signal, or RUN/STOP on the rank that watches it)."""
        if self.reason is None and self.watch_file and self.stop_file.exists():
            self.reason = f"{self.stop_file} exists"
        return self.reason is not None

    def clear(self) -> None:
        """After the checkpoint: the next start must not stop at once."""
        if self.watch_file:
            self.stop_file.unlink(missing_ok=True)

    def close(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def request_stop(run_dir: str | Path) -> None:
    """Ask a run to checkpoint and stop at its next step boundary (RUN/STOP)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / STOP_FILE).write_text("stop requested\n")
