"""One evaluation: load the model, run each enabled part, write DIR/results.json, the plots and DIR/report.html,
and (log_samples) DIR/samples.jsonl: one line per scored item, as lm-evaluation-harness's --log_samples.

Every input the enabled parts read is checked first (eval.checks), so a missing file fails before the model
is loaded. Parts that need data nobody supplied (no data.heldout, no scaling records) are recorded as
skipped with the reason, never silently left out. Without a checkpoint only the record-based fits
(scaling, mixture) run.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from eval.checks import require_inputs
from eval.config import EvalConfig
from eval.heldout import read_heldout
from eval.models import Scorer, load_scorer
from eval.multiple_choice import evaluate_multiple_choice
from eval.needle import evaluate_needle, plot_heatmap, read_haystack
from eval.perplexity import evaluate_perplexity, plot_domains
from eval.probes import load_probes, plot_trend, run_probes, update_history
from eval.report import write_report
from eval.scaling import choose_mixture, fit_with_intervals, plot_chinchilla, plot_mixture, read_records


def _json_ready(value: Any) -> Any:
    """NaN/inf become null so results.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return value


def _perplexity(scorer: Scorer, cfg: EvalConfig, out: Path, results: dict, samples: list[dict]) -> None:
    if not cfg.data.heldout:
        results["skipped"]["perplexity"] = "no data.heldout given"
        return
    heldout = read_heldout([cfg.resolve(p, "data.heldout") for p in cfg.data.heldout], cfg.data)
    if not heldout.docs:
        results["skipped"]["perplexity"] = f"data.heldout {cfg.data.heldout} holds no documents"
        return
    pp = cfg.perplexity
    rows: list[dict] = []
    results["perplexity"] = evaluate_perplexity(
        scorer, heldout.docs, pp.window, pp.stride, pp.max_window, samples=rows
    )
    results["perplexity"]["caps"] = heldout.caps()
    samples.extend({"part": "perplexity", **row} for row in rows)
    results["plots"]["perplexity"] = plot_domains(results["perplexity"], out / "perplexity.png").name


def _probes(scorer: Scorer, cfg: EvalConfig, out: Path, results: dict, samples: list[dict]) -> None:
    probes = load_probes([cfg.resolve(p, "probes.files") for p in cfg.probes.files])
    values = run_probes(scorer, probes)
    results["probes"] = values
    step = scorer.info.get("step")
    history = update_history(out / cfg.probes.history, scorer.name, step, values)
    kinds = {p.name: p.kind for p in probes}
    results["plots"]["probes_trend"] = plot_trend(history, kinds, out / "probes_trend.png").name


def _needle(scorer: Scorer, cfg: EvalConfig, out: Path, results: dict, samples: list[dict]) -> None:
    haystacks = {
        lang: read_haystack([cfg.resolve_data(p, f"needle.haystack.{lang}") for p in paths])
        for lang, paths in cfg.needle.haystack.items()
    }
    results["needle"] = evaluate_needle(scorer, haystacks, cfg.needle)
    results["plots"]["needle"] = plot_heatmap(results["needle"], out / "needle_heatmap.png").name


def _multiple_choice(scorer: Scorer, cfg: EvalConfig, out: Path, results: dict, samples: list[dict]) -> None:
    summaries, items = evaluate_multiple_choice(scorer, cfg.data_root(), cfg.multiple_choice)
    results["multiple_choice"] = summaries
    for task, rows in items.items():
        samples.extend({"part": "multiple_choice", "task": task, **row} for row in rows)


def _scaling(cfg: EvalConfig, out: Path, results: dict) -> None:
    if cfg.scaling.records is None:
        results["skipped"]["scaling"] = "no scaling.records given"
        return
    cols = read_records(cfg.resolve(cfg.scaling.records, "scaling.records"), ("params", "tokens", "loss"))
    sc = cfg.scaling
    results["scaling"] = fit_with_intervals(
        cols["params"], cols["tokens"], cols["loss"], sc.budgets, sc.bootstrap, sc.seed
    )
    path = plot_chinchilla(
        cols["params"], cols["tokens"], cols["loss"], results["scaling"], out / "scaling.png"
    )
    results["plots"]["scaling"] = path.name


def _mixture(cfg: EvalConfig, out: Path, results: dict) -> None:
    if cfg.mixture.records is None:
        results["skipped"]["mixture"] = "no mixture.records given"
        return
    cols = read_records(
        cfg.resolve(cfg.mixture.records, "mixture.records"), ("ratio", "domain_loss", "general_loss")
    )
    results["mixture"] = choose_mixture(
        cols["ratio"], cols["domain_loss"], cols["general_loss"], cfg.mixture.tolerance
    )
    path = plot_mixture(
        cols["ratio"], cols["domain_loss"], cols["general_loss"], results["mixture"], out / "mixture.png"
    )
    results["plots"]["mixture"] = path.name


def write_samples(samples: list[dict], path: Path) -> Path:
    """One JSON line per scored item (multiple-choice question, held-out document), written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in samples:
            fh.write(json.dumps(_json_ready(row), ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


MODEL_PARTS = {  # in the order of eval.checks.MODEL_PARTS; each adds its per-item records (if any) to samples
    "perplexity": _perplexity,
    "probes": _probes,
    "needle": _needle,
    "multiple_choice": _multiple_choice,
}


def run_eval(
    cfg: EvalConfig, checkpoint: str | Path | None, output: str | Path, origin: str = "eval config"
) -> dict:
    """Evaluate `checkpoint` (trainer checkpoint, run dir or Hugging Face dir) into `output`.

    Raises ConfigError (naming `origin`, every config key and path at fault) before any work when an input
    that will be read is missing."""
    require_inputs(cfg, checkpoint, output, origin)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "checkpoint": str(checkpoint) if checkpoint else None,
        "plots": {},
        "skipped": {},
        "timings_s": {},
        "config": cfg.model_dump(mode="json"),
    }
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)
    if checkpoint is not None:
        start = time.perf_counter()
        scorer = load_scorer(checkpoint, cfg.device, cfg.dtype)
        scorer.token_budget = cfg.token_budget
        results["timings_s"]["load"] = time.perf_counter() - start
        results["model"] = {
            "backend": scorer.backend,
            "max_length": scorer.max_length,
            "device": str(scorer.device),
            **scorer.info,
        }
        scorer.context_prefix = cfg.context_prefix
        results["model"]["context_prefix"] = cfg.context_prefix
        samples: list[dict] = []
        for name, part in MODEL_PARTS.items():
            if not getattr(cfg, name).enabled:
                results["skipped"][name] = "disabled in the config"
                continue
            start = time.perf_counter()
            part(scorer, cfg, out, results, samples)
            results["timings_s"][name] = time.perf_counter() - start
        if cfg.log_samples:
            results["samples"] = write_samples(samples, out / "samples.jsonl").name
    else:
        results["skipped"].update(dict.fromkeys(MODEL_PARTS, "no --checkpoint given"))
    for name, part in (("scaling", _scaling), ("mixture", _mixture)):
        start = time.perf_counter()
        part(cfg, out, results)
        results["timings_s"][name] = time.perf_counter() - start
    results = _json_ready(results)
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out / "results.json")
    write_report(results, out / "report.html")
    return results
