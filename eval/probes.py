"""Knowledge and behaviour probes from YAML, tracked across checkpoints.

Kinds (each yields one headline `value`, the number that is plotted over training):
- continuation: P(continuation | prompt); with `alternatives`, also the rank of the right one among them.
- perplexity:   PPL(text).
- contrast:     margin = ln PPL(bad) - ln PPL(good)  (> 0: the model prefers the good sentence);
                covers sentence comparisons (天空是蓝色的 vs 天空是绿色的) and contrastive pairs (9.9>9.11).
- format:       total probability of any accepted opening given the prompt (e.g. '{' after "以 json 输出").
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from dataengine.io.paths import is_file, read_bytes

if TYPE_CHECKING:  # the config checks import this module without loading torch
    from eval.models import Scorer


class _Probe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")  # becomes a metric key: probe/<name>
    lang: str = "en"
    note: str = ""


class ContinuationProbe(_Probe):
    kind: Literal["continuation"]
    prompt: str
    continuation: str
    alternatives: list[str] = Field(default_factory=list)


class PerplexityProbe(_Probe):
    kind: Literal["perplexity"]
    text: str


class ContrastProbe(_Probe):
    kind: Literal["contrast"]
    good: str
    bad: str


class FormatProbe(_Probe):
    kind: Literal["format"]
    prompt: str
    accept: list[str] = Field(min_length=1)


Probe = Annotated[
    ContinuationProbe | PerplexityProbe | ContrastProbe | FormatProbe, Field(discriminator="kind")
]
_PROBE_LIST = TypeAdapter(list[Probe])


def load_probes(paths: list[Path | str]) -> list[Probe]:
    """Probes from YAML files (local or s3://...) with a top-level `probes:` list; names must be unique
    across files."""
    probes: list[Probe] = []
    for path in paths:
        if not is_file(path):
            raise FileNotFoundError(f"probes file not found: {path} (probes.files)")
        raw = yaml.safe_load(read_bytes(path).decode("utf-8")) or {}
        if not isinstance(raw, dict) or not isinstance(raw.get("probes"), list):
            raise ValueError(f"{path}: expected a mapping with a `probes:` list")
        try:
            probes.extend(_PROBE_LIST.validate_python(raw["probes"]))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{path}: probes.{where}: {first['msg']}") from None
    names = [p.name for p in probes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate probe names {duplicates} in {[str(p) for p in paths]}")
    return probes


def _ppl(scorer: Scorer, texts: list[str]) -> list[float]:
    return [math.exp(-s.total / len(s.logprobs)) for s in scorer.sequence_logprob(texts)]


def run_probe(scorer: Scorer, probe: Probe) -> dict:
    """One probe's numbers; `value` is the tracked headline."""
    if isinstance(probe, ContinuationProbe):
        options = [probe.continuation, *probe.alternatives]
        scores = scorer.score_continuations([(probe.prompt, option) for option in options])
        result = {
            "value": math.exp(scores[0].logprob),
            "logprob": scores[0].logprob,
            "greedy": scores[0].greedy,
        }
        if probe.alternatives:
            logprobs = [s.logprob for s in scores]
            result["rank"] = 1 + sum(lp > logprobs[0] for lp in logprobs[1:])
            top = max(logprobs)
            result["share"] = math.exp(logprobs[0] - top) / sum(math.exp(lp - top) for lp in logprobs)
        return result
    if isinstance(probe, PerplexityProbe):
        return {"value": _ppl(scorer, [probe.text])[0]}
    if isinstance(probe, ContrastProbe):
        good, bad = _ppl(scorer, [probe.good, probe.bad])
        margin = math.log(bad) - math.log(good)
        return {"value": margin, "ppl_good": good, "ppl_bad": bad, "correct": margin > 0}
    scores = scorer.score_continuations([(probe.prompt, option) for option in probe.accept])
    return {
        "value": sum(math.exp(s.logprob) for s in scores),
        "per_option": [math.exp(s.logprob) for s in scores],
    }


def run_probes(scorer: Scorer, probes: list[Probe]) -> dict[str, dict]:
    return {p.name: {"kind": p.kind, "lang": p.lang, **run_probe(scorer, p)} for p in probes}


def update_history(path: Path, checkpoint: str, step: int | None, results: dict[str, dict]) -> list[dict]:
    """Record this checkpoint's probe values (replacing an earlier record of the same checkpoint)."""
    history = read_history(path)
    history = [h for h in history if h["checkpoint"] != checkpoint]
    history.append(
        {"checkpoint": checkpoint, "step": step, "values": {k: v["value"] for k, v in results.items()}}
    )
    history.sort(key=lambda h: (h["step"] is None, h["step"] or 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(h, ensure_ascii=False) + "\n" for h in history), encoding="utf-8")
    tmp.replace(path)
    return history


def read_history(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_trend(history: list[dict], kinds: dict[str, str], path: Path) -> Path:
    """One panel per probe kind, one line per probe, x = training step (or evaluation order)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted(set(kinds.values()))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    xs = [h["step"] if h["step"] is not None else i for i, h in enumerate(history)]
    labels = {
        "continuation": "P(continuation)",
        "perplexity": "PPL",
        "contrast": "ln PPL(bad) - ln PPL(good)",
        "format": "P(accepted format)",
    }
    for ax, kind in zip(axes[:, 0], panels, strict=True):
        for name in sorted(n for n, k in kinds.items() if k == kind):
            ys = [h["values"].get(name, float("nan")) for h in history]
            ax.plot(xs, ys, marker="o", label=name)
        if kind in ("continuation", "format", "perplexity"):
            ax.set_yscale("log")
        if kind == "contrast":
            ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_title(f"{kind} probes")
        ax.set_ylabel(labels[kind])
        ax.set_xlabel("step")
        ax.legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
