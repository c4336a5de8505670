"""What every command needs from its surroundings, in one place: the Ray connection (and how loud it is),
Ray Data's settings, atomic local writes and the versions recorded in run.json files.

Commands call `init_ray` instead of `ray.init`, so a cluster address, the quiet default and `--verbose`
mean the same thing for `run`, `dedup`, `pack` and the trainer's launcher. `init_ray` also arms the
capacity watchdog: a node lost mid-run turns a stall into a clear error instead of a hang (docs/cluster.md).
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_VERBOSE_ENV = "DATAENGINE_VERBOSE"
# Ray's own logs: C++ core workers (the `E core_worker` lines), Python loggers and Ray Data's.
_QUIET_ENV = {"RAY_BACKEND_LOG_LEVEL": "fatal", "RAY_LOG_TO_STDERR": "0"}
# Ray's Python loggers: the levels below hide their INFO lines; these also hide WARNINGs that repeat on every
# run and ask nothing of the user (the token-auth notice of a local instance, "Progress bars disabled").
_QUIET_LOGGERS = {
    "ray": logging.WARNING,
    "ray.data": logging.WARNING,
    "ray.train": logging.WARNING,
    "ray.tune": logging.WARNING,
    "ray._private.authentication.authentication_token_setup": logging.ERROR,
    "ray.data._internal.progress": logging.ERROR,
}
log = logging.getLogger(__name__)


def set_verbose(verbose: bool) -> None:
    """`--verbose`: Ray's INFO lines and worker logs come back (inherited by Ray's processes)."""
    if verbose:
        os.environ[_VERBOSE_ENV] = "1"
    else:
        os.environ.pop(_VERBOSE_ENV, None)


def verbose() -> bool:
    return os.environ.get(_VERBOSE_ENV, "") not in ("", "0")


def init_ray(address: str | None = None):
    """The `ray` module, connected: to `address`, else $RAY_ADDRESS, else a local instance without a
    dashboard. An already connected driver (a test's session, a Ray job) is used as it is."""
    import ray
    import ray.data  # noqa: F401  (loads the Data API onto the module returned)

    if ray.is_initialized():
        return ray
    loud = verbose()
    if not loud:
        for key, value in _QUIET_ENV.items():
            os.environ.setdefault(key, value)
        for name, level in _QUIET_LOGGERS.items():
            logging.getLogger(name).setLevel(level)
    address = address or os.environ.get("RAY_ADDRESS")
    options = {"log_to_driver": loud, "logging_level": logging.INFO if loud else logging.WARNING}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(include_dashboard=False, **options)
    data_context()
    CapacityWatchdog.start_once(ray)
    return ray


def data_context():
    """Ray Data's context with the engine's settings: no Ray progress bars or start banners (the
    commands draw their own progress), unless verbose."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    loud = verbose()
    ctx.enable_progress_bars = loud
    ctx.print_on_execution_start = loud
    ctx.execution_options.verbose_progress = loud
    # Hash-shuffle aggregators are memory holders (Ray reserves their memory separately), yet Ray gives them a
    # fraction of a CPU sized from the cluster's CPUs when they start. After a node is lost those fractions stay
    # on the survivors, and on a 1-CPU node the 1-CPU shuffle tasks then wait forever: the dedup hang of issue
    # 17. No CPU for the aggregators keeps every survivor's CPUs for the tasks.
    ctx.hash_shuffle_operator_actor_num_cpus_override = 0
    ctx.hash_aggregate_operator_actor_num_cpus_override = 0
    with warnings.catch_warnings():  # "deprecated and ignored", says Ray 2.60, yet its joins still read it
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.join_operator_actor_num_cpus_override = 0
    return ctx


def alive_resources(ray=None) -> dict[str, float]:
    """The summed resources of the nodes alive now. `ray.cluster_resources()` can still count a node that
    died a moment ago; pool sizes taken from it would wait for actors no node can hold."""
    if ray is None:
        import ray
    total: dict[str, float] = {}
    for node in ray.nodes():
        if node.get("Alive"):
            for key, value in node.get("Resources", {}).items():
                total[key] = total.get(key, 0.0) + value
    return total


def alive_cpus(ray=None) -> int:
    """Whole CPUs of the alive nodes (at least 1): the size for an actor pool of 1-CPU actors."""
    return max(1, int(alive_resources(ray).get("CPU", 1)))


class ClusterCapacityError(RuntimeError):
    """A node was lost and what is left of the cluster cannot run the work still waiting."""


_STALL_ENV = "DATAENGINE_STALL_TIMEOUT_S"
_STALL_DEFAULT_S = 90.0
_EXIT_GRACE_S = 30.0
_EX_TEMPFAIL = 75
_WAKE = signal.SIGUSR2  # not sent: `_thread.interrupt_main` runs its Python handler in the main thread


class CapacityWatchdog:
    """A daemon thread in the driver that turns "a node died and the rest can never run what waits" into a
    `ClusterCapacityError` in the main thread, instead of Ray's silent wait forever.

    It fires only when all of these hold for $DATAENGINE_STALL_TIMEOUT_S seconds (default 90; 0 turns it
    off): a node that was alive since the watch began is dead; tasks or actors wait for resources; none of
    those waiting shapes fits in what any alive node has free; and the cluster's use does not change (a long
    task still running would change nothing either, hence the generous default). Finished units and files are
    kept, so the error says to rerun the same command, which resumes. A main thread that cannot take the
    error (blocked in Ray's C++), so that the stall goes on, is ended 30s later with the message on stderr
    and exit status 75."""

    _started: CapacityWatchdog | None = None

    def __init__(self, ray, timeout_s: float, poll_s: float = 5.0):
        self.ray = ray
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.seen: dict[str, str] = {}  # node id -> address, every node seen alive
        self.lost: dict[str, str] = {}
        self.message = ""
        self._since: float | None = None
        self._last_usage: tuple | None = None

    @classmethod
    def start_once(cls, ray) -> CapacityWatchdog | None:
        """One watchdog per driver process, armed only in the main thread (where the error must land)."""
        timeout = float(os.environ.get(_STALL_ENV, _STALL_DEFAULT_S) or 0)
        if (
            cls._started is not None
            or timeout <= 0
            or threading.current_thread() is not threading.main_thread()
        ):
            return cls._started
        dog = cls(ray, timeout)
        previous = signal.getsignal(_WAKE)

        def on_wake(signum, frame):
            if dog.message:
                raise ClusterCapacityError(dog.message)
            if callable(previous):
                previous(signum, frame)

        signal.signal(_WAKE, on_wake)
        threading.Thread(target=dog._loop, name="dataengine-capacity-watchdog", daemon=True).start()
        cls._started = dog
        return dog

    def _loop(self) -> None:
        import _thread

        interrupted = None
        while True:
            time.sleep(self.poll_s)
            try:
                if not self.ray.is_initialized():
                    continue
                now = time.monotonic()
                stalled = self.check(now)
            except Exception as exc:  # a failed probe must never end the run it guards
                log.debug("capacity watchdog probe failed: %s", exc)
                continue
            if not stalled:
                interrupted = None
            elif interrupted is None:
                # lands where the main thread next runs Python code: at once in Ray Data's loops
                interrupted = now
                _thread.interrupt_main(_WAKE)
            elif now - interrupted >= _EXIT_GRACE_S:
                # still stalled: the main thread is blocked inside Ray's C++ (a bare `ray.get`) and never
                # took the error. End the process: its finished work is on disk, a rerun resumes.
                sys.stderr.write(f"dataengine: ClusterCapacityError: {self.message}\n")
                sys.stderr.flush()
                os._exit(_EX_TEMPFAIL)

    def check(self, now: float) -> bool:
        """One probe; True when the stall has lasted `timeout_s` (and `message` says why)."""
        from ray.autoscaler.v2.sdk import get_cluster_status

        for node in self.ray.nodes():
            node_id, addr = node["NodeID"], node.get("NodeManagerAddress", "?")
            if node.get("Alive"):
                self.seen[node_id] = addr
                self.lost.pop(node_id, None)
            elif node_id in self.seen:
                self.lost[node_id] = addr
        if not self.lost:
            self._since = None
            return False
        status = get_cluster_status(self.ray.get_runtime_context().gcs_address)
        free = [n.available_resources() for n in status.active_nodes + status.idle_nodes]
        waiting = [
            b.bundle
            for demand in status.resource_demands.ray_task_actor_demand
            for b in demand.bundles_by_count
        ]
        stuck = [w for w in waiting if not any(_fits(w, f) for f in free)]
        usage = tuple(sorted((u.resource_name, u.used) for u in status.cluster_resource_usage))
        if not stuck or usage != self._last_usage:
            self._since = now if stuck else None
            self._last_usage = usage
            return False
        if self._since is None:
            self._since = now
        if now - self._since < self.timeout_s:
            return False
        lost = ", ".join(f"{addr} (node {nid[:12]})" for nid, addr in sorted(self.lost.items()))
        shapes = "; ".join(sorted({_shape(w) for w in stuck}))
        self.message = (
            f"lost Ray node(s) {lost}: for {now - self._since:.0f}s the nodes left could not run what waits "
            f"({shapes}), so this run would hang. Finished work is kept: add capacity (or not) and rerun the "
            f"same command to resume. (${_STALL_ENV} sets this wait; 0 turns the check off.)"
        )
        return True


def _fits(bundle: dict[str, float], free: dict[str, float]) -> bool:
    return all(free.get(k, 0.0) + 1e-9 >= v for k, v in bundle.items() if v > 0)


def _shape(bundle: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in sorted(bundle.items()) if "memory" not in k)


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; renamed onto `target` when the block ends
    without an error, removed when it fails. A crash leaves the old file or the new one, never half."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


_PACKAGES = ("dataengine", "ray", "pyarrow", "numpy", "datasketch", "trafilatura", "fasttext-numpy2")


def versions(packages: Iterable[str] = _PACKAGES) -> dict[str, str]:
    """Python's and the installed packages' versions (those installed), for run.json files."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for pkg in packages:
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return found
