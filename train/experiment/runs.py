"""One run of an experiment: train with the real trainer, evaluate with the real eval, write result.json.

A run whose result.json exists is finished and skipped; an interrupted one resumes from its latest
checkpoint (the trainer's resume: auto), so re-running the experiment command continues where it stopped.
Runs are Ray tasks (`cpus_per_run` CPUs each, one fresh worker per run): one per core on a laptop,
spread over the nodes of a cluster (run_dir and shards then live on shared storage).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from dataengine.runtime import write_text_atomic
from train.config import TrainConfig
from train.experiment.grid import RunSpec

RESULT = "result.json"


def result_path(run: RunSpec) -> Path:
    return run.directory / RESULT


def _last(records: list[dict], key: str) -> dict | None:
    return next((r for r in reversed(records) if key in r), None)


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _train(cfg: TrainConfig) -> dict[str, Any]:
    """Train to max_steps (or resume and finish); the final held-out loss per channel when the shards
    have a held-out split."""
    from train.model import num_params
    from train.trainer import Trainer

    trainer = Trainer(cfg)
    try:
        trainer.train()
        row: dict[str, Any] = {
            "steps": trainer.step,
            "tokens": trainer.tokens,
            "seq_len": trainer.seq_len,
            "params": num_params(trainer.model),
            "params_nonembed": num_params(trainer.model, exclude_embedding=True),
        }
        records = read_metrics(Path(cfg.run_dir))
        evaluated = _last(records, "heldout/loss")
        if trainer.heldout is not None and (evaluated is None or evaluated["step"] != trainer.step):
            evaluated = trainer.evaluate()
        for key, value in (evaluated or {}).items():
            if key.startswith("heldout/loss"):
                row[key.replace("heldout/loss", "heldout_loss")] = value
        trained = _last(records, "loss")
        row["train_loss"] = trained["loss"] if trained else math.nan
        return row
    finally:
        trainer.close()


def _eval(eval_config: str, overrides: list[str], checkpoint: Path, output: Path) -> dict[str, Any]:
    """bpb overall, per language and per domain of the eval's held-out text (eval/perplexity.py)."""
    from eval.config import load_eval_config
    from eval.run import run_eval

    cfg = load_eval_config(eval_config, overrides)
    results = run_eval(cfg, checkpoint, output, origin=eval_config)
    row: dict[str, Any] = {}
    perplexity = results.get("perplexity") or {}
    nll = sum(d["nll"] for d in perplexity.get("domains", {}).values())
    size = sum(d["bytes"] for d in perplexity.get("domains", {}).values())
    if size:
        row["bpb"] = nll / math.log(2) / size
    languages = perplexity.get("languages", {})
    for name, values in languages.items():
        row[f"bpb/lang={name}"] = values["bpb"]
    for name, values in perplexity.get("domains", {}).items():
        if name not in languages:  # shards' domains are their channels, usually the languages again
            row[f"bpb/domain={name}"] = values["bpb"]
    for task, summary in (results.get("multiple_choice") or {}).items():
        for metric in ("acc", "acc_norm"):
            if isinstance(summary, dict) and metric in summary:
                row[f"{task}/{metric}"] = summary[metric]
    return row


def channel_ratios(cfg: TrainConfig) -> dict[str, float]:
    weights = cfg.data.channel_weights
    total = sum(weights.values())
    return {f"ratio/{name}": w / total for name, w in weights.items()} if total else {}


def execute(run: RunSpec, eval_config: str | None, eval_overrides: list[str], threads: int) -> dict[str, Any]:
    """Train and evaluate one run; returns (and writes) its result row."""
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    row: dict[str, Any] = {"run_id": run.run_id, **run.labels, "fit": run.fit, "seed": run.train.train.seed}
    row.update(channel_ratios(run.train))
    row.update(_train(run.train))
    row["train_s"] = time.perf_counter() - start
    if eval_config is not None:
        start = time.perf_counter()
        row.update(_eval(eval_config, eval_overrides, Path(run.train.run_dir), run.directory / "eval"))
        row["eval_s"] = time.perf_counter() - start
    write_text_atomic(result_path(run), json.dumps(row, indent=1) + "\n")
    return row


def run_all(
    runs: list[RunSpec], eval_config: str | None, eval_overrides: list[str], cpus: int, log=print
) -> list[dict[str, Any]]:
    """Every unfinished run as a Ray task; finished ones are read back. Returns the rows in grid order."""
    from dataengine.runtime import init_ray

    pending = [r for r in runs if not result_path(r).is_file()]
    log(f"experiment: {len(runs)} runs, {len(runs) - len(pending)} finished, {len(pending)} to run")
    if pending:
        ray = init_ray()
        task = ray.remote(num_cpus=cpus, max_calls=1)(execute)
        futures = {task.remote(r, eval_config, eval_overrides, cpus): r for r in pending}
        remaining = list(futures)
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1)
            run = futures[done[0]]
            try:
                ray.get(done[0])
            except Exception as exc:  # one failed run must not lose the others: report, go on
                failure = run.directory / "error.txt"
                failure.parent.mkdir(parents=True, exist_ok=True)
                failure.write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
                log(f"experiment: run {run.run_id} failed (see {failure}): {str(exc).splitlines()[0]}")
                continue
            log(f"experiment: run {run.run_id} finished ({len(runs) - len(remaining)}/{len(runs)})")
    return [json.loads(result_path(r).read_text()) for r in runs if result_path(r).is_file()]
