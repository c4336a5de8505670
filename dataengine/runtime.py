"""What every command needs from its surroundings, in one place: the Ray connection (and how loud it is),
Ray Data's settings, atomic local writes and the versions recorded in run.json files.

Commands call `init_ray` instead of `ray.init`, so a cluster address, the quiet default and `--verbose`
mean the same thing for `run`, `dedup`, `pack` and the trainer's launcher.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_VERBOSE_ENV = "DATAENGINE_VERBOSE"
# Ray's own logs: C++ core workers (the `E core_worker` lines), Python loggers and Ray Data's.
_QUIET_ENV = {"RAY_BACKEND_LOG_LEVEL": "fatal", "RAY_LOG_TO_STDERR": "0"}


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
        for name in ("ray", "ray.data", "ray.train", "ray.tune"):
            logging.getLogger(name).setLevel(logging.WARNING)
    address = address or os.environ.get("RAY_ADDRESS")
    options = {"log_to_driver": loud, "logging_level": logging.INFO if loud else logging.WARNING}
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(include_dashboard=False, **options)
    data_context()
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
    return ctx


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
