"""`python -m train.experiment CONFIG [--set key=value ...]`: a grid of small runs -> table, plots, law fits.

Prepares the data (the config's `prepare` commands, each skipped once its output exists), trains and
evaluates every run of the grid as Ray tasks (finished runs skipped, interrupted ones resumed), then writes
OUTPUT/experiments.parquet, OUTPUT/curves.parquet, the fits, OUTPUT/summary.json and OUTPUT/report.html.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from dataengine.cli_support import fail
from dataengine.configio import ConfigError

app = typer.Typer(add_completion=False, help=__doc__)


def prepare(cfg, log=print) -> None:
    """Run each prepare step whose `creates` path is missing; `dataengine` and `python` are this env's."""
    for name, step in cfg.prepare.items():
        creates = Path(cfg.expand(step.creates))
        if creates.exists():
            log(f"prepare {name}: {creates} exists, skipped")
            continue
        args = shlex.split(cfg.expand(step.run))
        if args[0] == "python":
            args[0] = sys.executable
        elif args[0] == "dataengine":
            args[0] = str(Path(sys.executable).parent / "dataengine")
        log(f"prepare {name}: $ {' '.join(args)}")
        start = time.perf_counter()
        completed = subprocess.run(args, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"prepare step {name} failed (exit {completed.returncode}): {step.run}")
        if not creates.exists():
            raise RuntimeError(f"prepare step {name} finished but did not create {creates}: {step.run}")
        log(f"prepare {name}: done in {time.perf_counter() - start:.0f} s")


def run_experiment(
    config: str | Path, overrides: list[str] | None = None, log=print, prepare_only: bool = False
) -> dict | None:
    """The whole experiment; returns the table, the fits, the report's path, the failed count and the axes."""
    from train.experiment.config import load_experiment_config
    from train.experiment.grid import expand_runs

    cfg = load_experiment_config(config, overrides)
    runs = expand_runs(cfg)  # every run's config validated before any work
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out / "experiment.lock"):
        return _run_locked(cfg, runs, out, config, log, prepare_only)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """One experiment command per output directory: a second one would train the same runs into the same
    run dirs at the same time (interleaved metrics, overwritten checkpoints)."""
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ConfigError(
                f"{path.parent}: another train.experiment is running on it ({holder})"
            ) from None
        handle.truncate(0)
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_locked(cfg, runs, out: Path, config, log, prepare_only: bool) -> dict | None:
    import pandas as pd

    from train.experiment.fits import fit_mixture, fit_scaling, recommended_runs
    from train.experiment.grid import override
    from train.experiment.report import write_report
    from train.experiment.runs import run_all
    from train.experiment.table import run_curves, write_parquet

    prepare(cfg, log)
    if prepare_only:
        return None
    eval_overrides = [override(k, v, cfg) for k, v in cfg.eval_set.items()]
    rows = run_all(runs, cfg.eval, eval_overrides, cfg.cpus_per_run, log)
    if not rows:
        raise RuntimeError(f"no run of {config} finished: see the error.txt files under {out / 'runs'}")

    def tables_and_fits(rows, runs):
        table, curves = pd.DataFrame(rows), run_curves(runs)
        fits = {}
        if cfg.fits.scaling.enabled:
            fits["scaling"] = fit_scaling(table, cfg.fits.scaling)
        if cfg.fits.mixture.enabled:
            fits["mixture"] = fit_mixture(table, curves, cfg.fits.mixture)
        return table, curves, fits

    table, curves, fits = tables_and_fits(rows, runs)
    verify = recommended_runs(cfg, runs, fits.get("mixture", {}))
    if verify:  # the recommendation itself, trained and measured: runs the fit never saw
        log(f"experiment: verifying the recommended ratio with {len(verify)} runs ({verify[0].labels})")
        runs = runs + verify
        rows = run_all(runs, cfg.eval, eval_overrides, cfg.cpus_per_run, log)
        table, curves, fits = tables_and_fits(rows, runs)
    write_parquet(table, out / "experiments.parquet")
    write_parquet(curves, out / "curves.parquet")
    report = write_report(out, table, curves, list(cfg.axes), fits)
    missing = len(runs) - len(rows)
    log(f"experiment: {len(rows)} runs in {out / 'experiments.parquet'}; report {report}")
    if missing:
        log(f"experiment: {missing} runs failed (their error.txt says why); re-run the command to retry them")
    return {"table": table, "fits": fits, "report": report, "failed": missing, "axes": list(cfg.axes)}


def _fit_line(fit: dict) -> str:
    if "skipped" in fit:
        return f"skipped ({fit['skipped']})"
    checks = fit.get("checks", [])
    errors = [c.get("relative_error", c.get("dcpt", {}).get("relative_error")) for c in checks]
    check = (
        f"; held-out runs: mean |relative error| {sum(abs(e) for e in errors) / len(errors):.2%}"
        if errors
        else ""
    )
    if "recommended" in fit:
        low_high = fit["ratio_interval"] or [float("nan")] * 2
        return f"recommended {fit['domain']} ratio {fit['recommended']['ratio']:.3f} (95% {low_high[0]:.3f}-{low_high[1]:.3f}){check}"
    return f"E={fit['fit']['E']:.3f} alpha={fit['fit']['alpha']:.3f} beta={fit['fit']['beta']:.3f}{check}"


@app.command()
def main(
    config: Path = typer.Argument(
        ..., help="experiment YAML, e.g. configs/experiments/raw_vs_processed.yaml"
    ),
    set_: list[str] = typer.Option(None, "--set", help="override an experiment key (repeatable)"),
    prepare_only: bool = typer.Option(False, "--prepare-only", help="run the prepare steps, train nothing"),
) -> None:
    """Prepare the data, train and evaluate every run of the grid as Ray tasks (finished runs skipped), then
    write OUTPUT/experiments.parquet, curves.parquet, summary.json and report.html with the law fits.
    `--set set.train.max_steps=50` changes a train key of every run; `--set output=DIR` an experiment key."""
    try:
        result = run_experiment(config, list(set_ or []), prepare_only=prepare_only)
    except ConfigError as exc:
        fail(str(exc))
    if result is None:
        return
    from train.experiment.report import summarise

    for row in summarise(result["table"], result["axes"]):  # bits per byte: median [min, max] over seeds
        shown = {k: v for k, v in row.items() if k == "bpb" or k.startswith("bpb/lang=")}
        cells = [
            f"{'all' if k == 'bpb' else k.removeprefix('bpb/lang=')} {v['median']:.4f} [{v['min']:.4f}, {v['max']:.4f}]"
            for k, v in shown.items()
        ]
        typer.echo(f"{row['variant']:<16} runs {row['runs']}  bpb: " + "  ".join(cells))
    for name, fit in result["fits"].items():
        typer.echo(f"fit {name}: {_fit_line(fit)}")
    if result["failed"]:
        raise typer.Exit(code=1)


if __name__ == "__main__":
    app()
