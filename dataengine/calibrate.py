"""``dataengine calibrate``: per-language thresholds from reference text, FineWeb-2's per-rule quantiles.

Phase 1's stages (those of a pipeline config, ``decide.early_exit`` off so every signal is computed) run
over reference documents of one language (Wikipedia, books, news). For each thresholded rule of the
gopher, gopher_rep, c4 and fineweb stages, the threshold is set at the quantile of its signal that keeps
``keep`` of those documents on that rule alone, and written as ``stages.<stage>.by_lang.<lang>`` overrides
that ``configs/pipeline.yaml`` can ``include``.

Choices (each a config key):
- ``mode: loosen`` (default) moves a threshold only where the shipped default rejects more than
  ``1 - keep`` of the reference: good text of the language is kept, and web text is not held to the
  higher standard of an encyclopedia (a quantile of Wikipedia would demand dozens of stop words).
  ``mode: quantile`` sets every threshold at the quantile, tighter or looser (FineWeb-2's own form).
- A threshold never moves more than ``max_factor`` toward the value that turns its rule off (0 for a
  minimum; infinity, or 1 for a share, for a maximum): ``min_alpha_words_ratio`` 0.8 goes no lower than
  0.4, ``max_bullet_lines_ratio`` 0.9 no higher than 0.95, so every rule still rejects what it is meant to.
  A rule clamped there keeps less than ``keep`` of the reference, and the report says so.
- The document-length rules (gopher ``min_words``/``max_words``) are not calibrated: they measure how the
  reference was cut into documents, not the language.
- ``confidence``: the quantile is the order statistic that keeps ``keep`` of *unseen* documents of the
  same kind with that probability (a distribution-free tolerance bound), not only of the sample.
- The reference is split by document id: ``heldout_fraction`` of it is not used to calibrate, and the
  per-rule keep rates before and after are measured on it.
"""

from __future__ import annotations

import hashlib
import math
import textwrap
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Literal

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field

from dataengine.cli_support import CONFIG_ARGUMENT_HELP, SET_HELP
from dataengine.io.config import InputConfig
from dataengine.io.paths import write_bytes_atomic

CALIBRATED_STAGES = ("gopher", "gopher_rep", "c4", "fineweb")


class CalibrateCommand(BaseModel):
    """``dataengine calibrate``: every setting, with its default."""

    model_config = ConfigDict(extra="forbid")

    reference: list[str] = Field(
        ...,
        min_length=1,
        description="reference documents of the language: files, folders, globs (--reference)",
    )
    lang: str = Field(
        ..., min_length=1, description="the language to calibrate, as language ID names it (--lang)"
    )
    keep: float = Field(
        0.95, gt=0, lt=1, description="share of the reference each rule must keep on its own (--keep)"
    )
    output: str = Field(..., description="the thresholds YAML to write (--output)")
    pipeline: str = Field(
        "configs/pipeline.yaml",
        description="the pipeline config whose stages compute the signals (--pipeline)",
    )
    mode: Literal["loosen", "quantile"] = Field(
        "loosen",
        description="loosen: move a threshold only where the default keeps less than `keep`; quantile: set "
        "every threshold at the quantile, tighter or looser (FineWeb-2)",
    )
    max_factor: float = Field(
        2.0,
        ge=1,
        description="a threshold moves at most this factor toward the value that turns its rule off",
    )
    confidence: float | None = Field(
        0.9,
        gt=0,
        lt=1,
        description="the quantile keeps `keep` of unseen documents of the kind with this probability; "
        "null = the plain sample quantile",
    )
    heldout_fraction: float = Field(
        0.2, ge=0, lt=1, description="share of the reference (by document id) held out to measure keep rates"
    )
    stages: list[Literal["gopher", "gopher_rep", "c4", "fineweb"]] = Field(
        default_factory=lambda: list(CALIBRATED_STAGES), description="the stages whose rules are calibrated"
    )
    name: str | None = Field(
        None, description="the reference set in words (its sources), written in the YAML header (--name)"
    )
    max_documents: int | None = Field(None, ge=1, description="read at most this many reference documents")
    input: InputConfig = Field(default_factory=InputConfig, description="how the reference files are read")


@dataclass(frozen=True)
class Rule:
    """One threshold: its config key (and n for an n-gram rule), the signal(s) it compares, its direction."""

    stage: str
    key: str
    signals: tuple[str, ...]
    direction: Literal["min", "max"]
    share: bool = False  # the signal is a share of the document (at most 1)
    integer: bool = False
    n: int | None = None

    @property
    def name(self) -> str:
        return f"{self.stage}.{self.key}" + (f".{self.n}" if self.n is not None else "")

    def value(self, row: dict) -> float | None:
        """The row's value for this rule (the largest of its signals), or None when it was not measured."""
        values = [row.get(f"{self.stage}.{s}") for s in self.signals]
        values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
        return max(values) if values else None

    def keeps(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.direction == "min" else value <= threshold

    def loosest(self, default: float, factor: float) -> float:
        """The loosest threshold allowed: ``factor`` toward the value that turns the rule off."""
        if self.direction == "min":
            loosest = default / factor
            return float(math.ceil(loosest)) if self.integer else loosest
        loosest = default * factor
        if self.share:
            loosest = min(loosest, 1 - (1 - default) / factor)
        return float(math.floor(loosest)) if self.integer else loosest


# Every calibrated rule of the stage modules: config key, signal column(s) (without the stage prefix) and
# direction (min: a document is kept when its signal is at least the threshold; max: at most).
FIXED_RULES = (
    Rule("gopher", "min_avg_word_length", ("mean_word_length",), "min"),
    Rule("gopher", "max_avg_word_length", ("mean_word_length",), "max"),
    Rule("gopher", "max_symbol_word_ratio", ("hash_ratio", "ellipsis_ratio"), "max"),
    Rule("gopher", "max_bullet_lines_ratio", ("bullet_lines_ratio",), "max", share=True),
    Rule("gopher", "max_ellipsis_lines_ratio", ("ellipsis_lines_ratio",), "max", share=True),
    Rule("gopher", "min_alpha_words_ratio", ("alpha_words_ratio",), "min"),
    Rule("gopher", "min_stop_words", ("stop_words",), "min", integer=True),
    Rule("gopher_rep", "dup_para_frac", ("dup_para_frac",), "max", share=True),
    Rule("gopher_rep", "dup_para_char_frac", ("dup_para_char_frac",), "max", share=True),
    Rule("gopher_rep", "dup_line_frac", ("dup_line_frac",), "max", share=True),
    Rule("gopher_rep", "dup_line_char_frac", ("dup_line_char_frac",), "max", share=True),
    Rule("c4", "min_sentences", ("sentences",), "min", integer=True),
    Rule("fineweb", "line_punct_thr", ("line_punct_ratio",), "min"),
    Rule("fineweb", "short_line_thr", ("short_line_ratio",), "max", share=True),
    Rule("fineweb", "char_duplicates_ratio", ("char_dup_ratio",), "max", share=True),
    Rule("fineweb", "new_line_ratio", ("newline_ratio",), "max"),
)


def variant_of(lang: str) -> str:
    """The rule variant a document of ``lang`` meets: ``cjk`` or ``default``."""
    from dataengine.stages.document import CJK_LANGS

    return "cjk" if lang in CJK_LANGS else "default"


def rules_for(stages_cfg, lang: str, stages: list[str]) -> list[tuple[Rule, float]]:
    """(rule, default threshold) for each rule that is on in the variant ``lang`` meets."""
    variant = variant_of(lang)
    out: list[tuple[Rule, float]] = []
    for rule in FIXED_RULES:
        stage_cfg = getattr(stages_cfg, rule.stage, None)
        if rule.stage not in stages or stage_cfg is None:
            continue
        rules = getattr(stage_cfg, variant)
        default = getattr(rules, rule.key)
        if default is None or (rule.key == "min_sentences" and default == -1):
            continue  # the rule is off
        if rule.key == "min_stop_words" and default <= 0:
            continue
        out.append((rule, float(default)))
    rep = getattr(stages_cfg, "gopher_rep", None)
    if "gopher_rep" in stages and rep is not None:
        rules = getattr(rep, variant)
        for key, signal in (("top_n_grams", "top_{}_gram"), ("dup_n_grams", "dup_{}_gram")):
            for n, default in sorted(getattr(rules, key).items()):
                rule = Rule("gopher_rep", key, (signal.format(n),), "max", share=True, n=n)
                out.append((rule, float(default)))
    return out


def required_count(n: int, keep: float, confidence: float | None) -> int:
    """How many of ``n`` sample documents the threshold must keep: ``ceil(keep * n)``, or with
    ``confidence`` the smallest k whose k-th order statistic keeps ``keep`` of the population with that
    probability (P[Binomial(n, keep) <= k - 1] >= confidence); at most n."""
    if n == 0:
        return 0
    if confidence is None:
        return min(n, math.ceil(keep * n - 1e-9))
    cdf = 0.0
    log_keep, log_rest = math.log(keep), math.log1p(-keep)
    for j in range(n + 1):
        log_pmf = math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1)
        cdf += math.exp(log_pmf + j * log_keep + (n - j) * log_rest)
        if cdf >= confidence:
            return min(n, j + 1)
    return n


def quantile_threshold(values: list[float], rule: Rule, count: int) -> float:
    """The strictest threshold that keeps at least ``count`` of ``values`` on ``rule``."""
    if count <= 0:
        return -math.inf if rule.direction == "min" else math.inf
    ordered = sorted(values, reverse=rule.direction == "min")
    value = ordered[count - 1]
    if rule.integer:
        return float(math.floor(value) if rule.direction == "min" else math.ceil(value))
    # signals are rounded to 4 decimals; round outward so the threshold still keeps that document
    scaled = value * 10_000
    return (math.floor(scaled + 1e-6) if rule.direction == "min" else math.ceil(scaled - 1e-6)) / 10_000


def keep_rate(values: list[float], rule: Rule, threshold: float) -> float | None:
    return sum(rule.keeps(v, threshold) for v in values) / len(values) if values else None


@dataclass
class RuleResult:
    rule: Rule
    default: float
    calibrated: float
    clamped: bool
    n_calibration: int
    n_heldout: int
    keep_default_calibration: float | None
    keep_calibrated_calibration: float | None
    keep_default_heldout: float | None
    keep_calibrated_heldout: float | None

    @property
    def changed(self) -> bool:
        return self.calibrated != self.default


def calibrate_rule(
    rule: Rule,
    default: float,
    calibration: list[float],
    heldout: list[float],
    cfg: CalibrateCommand,
) -> RuleResult:
    """The calibrated threshold of one rule from its signal values on the calibration split."""
    calibrated, clamped = default, False
    if calibration:
        quantile = quantile_threshold(
            calibration, rule, required_count(len(calibration), cfg.keep, cfg.confidence)
        )
        if cfg.mode == "loosen":
            quantile = min(default, quantile) if rule.direction == "min" else max(default, quantile)
        loosest = rule.loosest(default, cfg.max_factor)
        if rule.direction == "min" and quantile < loosest or rule.direction == "max" and quantile > loosest:
            quantile, clamped = loosest, True
            if not rule.integer:
                quantile = round(quantile, 4)
        calibrated = quantile
    return RuleResult(
        rule,
        default,
        calibrated,
        clamped,
        len(calibration),
        len(heldout),
        keep_rate(calibration, rule, default),
        keep_rate(calibration, rule, calibrated),
        keep_rate(heldout, rule, default),
        keep_rate(heldout, rule, calibrated),
    )


def is_heldout(doc_id: str, fraction: float) -> bool:
    """A stable split by document id: the same documents are held out on every run and machine."""
    digest = hashlib.sha1(doc_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def pipeline_for_calibration(path: str, lang: str):
    """The pipeline config with every signal computed (early_exit off), no dedup or signatures, and without
    the language's own ``by_lang`` overrides (a calibration starts from the variant's defaults)."""
    from dataengine.config import PipelineConfig
    from dataengine.configio import read_yaml, validate

    data = read_yaml(path)
    for stage in (data.get("stages") or {}).values():
        if isinstance(stage, dict) and isinstance(stage.get("by_lang"), dict):
            stage["by_lang"].pop(lang, None)
    data.setdefault("decide", {})
    data["decide"] = {**(data["decide"] or {}), "early_exit": False}
    data["dedup"] = None
    data["write"] = {**(data.get("write") or {}), "minhash": False}
    return validate(PipelineConfig, data, f"{path} (for calibration)")


def annotate(cfg: CalibrateCommand, pipeline) -> tuple[list[dict], dict[str, int]]:
    """The reference rows after phase 1's stages (signals on kept and rejected rows), and the counts of
    documents set aside: unreadable, and detected as another language."""
    from dataengine.io.paths import expand_inputs
    from dataengine.io.readers import read_unit
    from dataengine.io.units import plan_units
    from dataengine.processor import DocumentProcessor

    files = expand_inputs(cfg.reference)
    if not files:
        raise FileNotFoundError(f"reference: no files match {cfg.reference}")
    processor = DocumentProcessor(pipeline)
    rows = (row for unit in plan_units(files, cfg.input) for row in read_unit(unit, cfg.input))
    rows = islice(rows, cfg.max_documents)
    out: list[dict] = []
    other: dict[str, int] = {}
    while batch := list(islice(rows, pipeline.ray.batch_size)):
        kept, rejected = processor.process(batch)
        for row in kept + rejected:
            reject = row.get("reject") or ""
            if reject.startswith("io:"):
                other["unreadable"] = other.get("unreadable", 0) + 1
            elif row.get("lang") != cfg.lang:
                key = f"lang={row.get('lang')}"
                other[key] = other.get(key, 0) + 1
            else:
                out.append(row)
    return out, other


def calibrate(cfg: CalibrateCommand) -> dict:
    """Run the stages on the reference, calibrate every rule, write ``cfg.output``; returns the summary."""
    pipeline = pipeline_for_calibration(cfg.pipeline, cfg.lang)
    rows, other = annotate(cfg, pipeline)
    if not rows:
        raise ValueError(f"reference: no document detected as {cfg.lang!r} (set aside: {other})")
    heldout_flags = [is_heldout(str(row.get("id") or ""), cfg.heldout_fraction) for row in rows]
    results = []
    for rule, default in rules_for(pipeline.stages, cfg.lang, cfg.stages):
        values = [rule.value(row) for row in rows]
        if rule.key == "min_stop_words":  # -1: the language has no stop-word list, the rule is skipped
            values = [v if v is not None and v >= 0 else None for v in values]
        if rule.key == "line_punct_thr" and getattr(
            getattr(pipeline.stages.fineweb, variant_of(cfg.lang)), "line_punct_exclude_zero", False
        ):
            values = [v if v else None for v in values]
        calibration = [v for v, h in zip(values, heldout_flags, strict=True) if v is not None and not h]
        heldout = [v for v, h in zip(values, heldout_flags, strict=True) if v is not None and h]
        results.append(calibrate_rule(rule, default, calibration, heldout, cfg))
    summary = {
        "lang": cfg.lang,
        "variant": variant_of(cfg.lang),
        "documents": len(rows),
        "heldout": sum(heldout_flags),
        "set_aside": other,
        "rules": results,
    }
    write_bytes_atomic(cfg.output, thresholds_yaml(cfg, summary).encode())  # local or s3://
    return summary


def overrides(results: list[RuleResult], lang: str) -> dict:
    """``stages.<stage>.by_lang.<lang>`` with the thresholds calibration moved (an n-gram map whole)."""
    stages: dict[str, dict] = {}
    for r in results:
        if not r.changed:
            continue
        rules = stages.setdefault(r.rule.stage, {"by_lang": {lang: {}}})["by_lang"][lang]
        if r.rule.n is None:
            rules[r.rule.key] = int(r.calibrated) if r.rule.integer else r.calibrated
    for r in results:  # an n-gram map is written whole when any n moved
        if r.rule.n is not None and any(o.changed and o.rule.key == r.rule.key for o in results):
            rules = stages.setdefault(r.rule.stage, {"by_lang": {lang: {}}})["by_lang"][lang]
            rules.setdefault(r.rule.key, {})[r.rule.n] = r.calibrated
    return {"stages": stages} if stages else {}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _number(value: float) -> str:
    return f"{int(value)}" if float(value).is_integer() else f"{value:g}"


def report_table(summary: dict) -> list[str]:
    """One line per rule: default and calibrated threshold, keep rates on the held-out part."""
    lines = [
        f"{'rule':<34}{'default':>9}{'calibrated':>12}   held-out keep (n)  default -> calibrated",
    ]
    for r in summary["rules"]:
        mark = " (clamped)" if r.clamped else ""
        lines.append(
            f"{r.rule.name:<34}{_number(r.default):>9}{_number(r.calibrated):>12}   "
            f"({r.n_heldout:>4})  {_rate(r.keep_default_heldout)} -> {_rate(r.keep_calibrated_heldout)}{mark}"
        )
    return lines


def thresholds_yaml(cfg: CalibrateCommand, summary: dict) -> str:
    header = [
        f"Calibrated thresholds for lang={cfg.lang} ({summary['variant']} rules): dataengine calibrate",
        f"keep={cfg.keep} mode={cfg.mode} max_factor={cfg.max_factor} confidence={cfg.confidence} "
        f"heldout_fraction={cfg.heldout_fraction} pipeline={cfg.pipeline}",
        *(textwrap.wrap(f"reference set: {cfg.name}", 106, subsequent_indent="  ") if cfg.name else []),
        "reference files: " + " ".join(cfg.reference),
        f"{summary['documents']} documents detected as {cfg.lang} ({summary['heldout']} held out); "
        f"set aside: {summary['set_aside'] or 'none'}",
        "Only thresholds calibration moved are written; every rule's figures:"
        if any(r.changed for r in summary["rules"])
        else f"No threshold moved: each rule already keeps at least {cfg.keep} of this reference. Every rule:",
        *report_table(summary),
    ]
    body = overrides(summary["rules"], cfg.lang)
    text = "\n".join("# " + line for line in header) + "\n"
    return text + (yaml.safe_dump(body, sort_keys=False, allow_unicode=True) if body else "{}\n")


# The command line: ``dataengine calibrate [CONFIG] [--set key=value ...]``, flags as sugar for keys.


def calibrate_command(
    config: Path = typer.Argument(None, help=CONFIG_ARGUMENT_HELP, show_default=False),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
    reference: list[str] = typer.Option(
        None, "--reference", "-r", help="sets reference: file, folder or glob (repeatable)"
    ),
    lang: str = typer.Option(None, "--lang", help="sets lang"),
    keep: float = typer.Option(None, "--keep", help="sets keep"),
    output: str = typer.Option(None, "--output", "-o", help="sets output"),
    pipeline: str = typer.Option(None, "--pipeline", help="sets pipeline"),
    mode: str = typer.Option(None, "--mode", help="sets mode (loosen | quantile)"),
    name: str = typer.Option(None, "--name", help="sets name"),
) -> None:
    """Per-language thresholds that keep KEEP of reference text of LANG on each rule (FineWeb-2's method);
    writes stages.<stage>.by_lang.<lang> overrides for configs/pipeline.yaml to include."""
    from dataengine.cli_support import fail, load_command_config
    from dataengine.configio import ConfigError

    flags = {
        "reference": reference,
        "lang": lang,
        "keep": keep,
        "output": output,
        "pipeline": pipeline,
        "mode": mode,
        "name": name,
    }
    cfg = load_command_config(CalibrateCommand, config, set_, flags)
    try:
        summary = calibrate(cfg)
    except (ConfigError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(
        f"{summary['documents']} {cfg.lang} documents ({summary['heldout']} held out); "
        f"set aside: {summary['set_aside'] or 'none'}"
    )
    typer.echo("\n".join(report_table(summary)))
    typer.echo(f"wrote {cfg.output}")
