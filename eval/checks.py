"""Every input an eval config names, checked before any model is loaded: all problems reported at once.

Which inputs count depends on what will run: the model parts (perplexity, probes, needle, multiple choice)
only with a checkpoint and only when enabled; the run-record fits (scaling, mixture) whenever their
records are set. Each problem names the config key (or command-line option) and the path. This module
reads only small files (manifests, probe YAML) and never imports torch, so a bad config fails in about a
second instead of after the model is loaded or, in the trainer, after training.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dataengine.configio import ConfigError
from dataengine.io.paths import is_dir, is_file, join, read_bytes
from eval.config import EvalConfig, load_eval_config

MODEL_PARTS = ("perplexity", "probes", "needle", "multiple_choice")
INLOOP_PARTS = ("perplexity", "probes")  # what eval.hook.InLoopEval measures
HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def enabled_parts(
    cfg: EvalConfig, checkpoint: str | Path | None, parts: Iterable[str] = MODEL_PARTS
) -> list[str]:
    """The model parts that will run: the enabled ones, and none without a checkpoint."""
    return [p for p in parts if getattr(cfg, p).enabled] if checkpoint is not None else []


def _data_dir(cfg: EvalConfig) -> list[str]:
    try:
        root = cfg.data_root()
    except ConfigError as exc:
        return [str(exc)]
    return (
        []
        if root.is_dir()
        else [f"data_dir: {root} is not a directory (it holds the benchmarks and haystacks)"]
    )


def _shards_problem(path: Path | str, split: str) -> str | None:
    manifest = join(path, "manifest.json")
    if not is_file(manifest):
        return f"{path} is a directory without manifest.json (a directory must be token shards, §3.3)"
    try:
        splits = json.loads(read_bytes(manifest).decode("utf-8")).get("splits", {})
    except (json.JSONDecodeError, AttributeError, OSError) as exc:
        return f"{manifest}: unreadable shards manifest ({exc})"
    if split not in splits:
        return f"{path} has no {split!r} split (data.split; it has {sorted(splits)})"
    if not is_file(join(path, "tokenizer.json")):
        return f"{path} has no tokenizer.json (needed to decode the shards)"
    return None


def _resolved(
    raws: list[str], key: str, resolve: Callable[[str, str], Path | str], problems: list[str]
) -> Iterator[tuple[str, Path | str]]:
    """(key[i], path) of each listed path; a path that cannot be resolved becomes a problem instead."""
    for i, raw in enumerate(raws):
        try:
            yield f"{key}[{i}]", resolve(raw, f"{key}[{i}]")
        except ConfigError as exc:
            problems.append(str(exc))


def _perplexity(cfg: EvalConfig) -> list[str]:
    problems: list[str] = []
    for key, path in _resolved(cfg.data.heldout, "data.heldout", cfg.resolve, problems):
        if is_dir(path):
            problem = _shards_problem(path, cfg.data.split)
            if problem:
                problems.append(f"{key}: {problem}")
        elif not is_file(path):
            problems.append(f"{key}: {path} does not exist")
    return problems


def _probes(cfg: EvalConfig) -> list[str]:
    from eval.probes import load_probes

    problems: list[str] = []
    paths: list[Path | str] = []
    for key, path in _resolved(cfg.probes.files, "probes.files", cfg.resolve, problems):
        if is_file(path):
            paths.append(path)
        else:
            problems.append(f"{key}: {path} does not exist")
    if not problems:
        try:
            load_probes(paths)  # small YAML: a malformed probe fails here too, not mid-run
        except (ValueError, OSError) as exc:
            problems.append(f"probes.files: {exc}")
    return problems


def _needle(cfg: EvalConfig) -> list[str]:
    from eval.needle import TEMPLATES

    problems = []
    for lang, paths in cfg.needle.haystack.items():
        if lang not in TEMPLATES:
            problems.append(
                f"needle.haystack.{lang}: no passkey template for language {lang!r} (have {sorted(TEMPLATES)})"
            )
        if not paths:
            problems.append(f"needle.haystack.{lang}: no haystack files listed")
        for key, path in _resolved(paths, f"needle.haystack.{lang}", cfg.resolve_data, problems):
            if not path.is_file():
                problems.append(f"{key}: {path} does not exist (relative paths are under data_dir)")
    return problems


def _multiple_choice(cfg: EvalConfig) -> list[str]:
    from eval.multiple_choice import task_file

    try:
        root = cfg.data_root()
    except ConfigError as exc:
        return [str(exc)]
    return [
        f"multiple_choice.tasks: {task} needs {task_file(task, root)}, which does not exist (under data_dir)"
        for task in cfg.multiple_choice.tasks
        if not task_file(task, root).is_file()
    ]


def _records(cfg: EvalConfig) -> list[str]:
    problems = []
    for key, raw in (("scaling.records", cfg.scaling.records), ("mixture.records", cfg.mixture.records)):
        if raw is None:
            continue
        try:
            path = cfg.resolve(raw, key)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if not is_file(path):
            problems.append(f"{key}: {path} does not exist")
    return problems


def is_hf_dir(path: Path) -> bool:
    """A Hugging Face model directory: config.json and weights (eval.models loads it with transformers)."""
    return (path / "config.json").is_file() and any((path / name).exists() for name in HF_WEIGHTS)


def _checkpoint(path: Path) -> list[str]:
    """A Hugging Face directory, a trainer checkpoint (meta.json) or a trainer run dir, as eval.models loads."""
    if not path.exists():
        return [f"--checkpoint: {path} does not exist"]
    if is_hf_dir(path):
        return []
    if (path / "meta.json").is_file():
        run = path.parent.parent
    elif any((step / "meta.json").is_file() for step in (path / "checkpoints").glob("step-*")):
        run = path
    else:
        return [
            f"--checkpoint: {path} is neither a Hugging Face model directory (config.json and weights), "
            "a trainer checkpoint (meta.json) nor a trainer run directory with checkpoints/step-*"
        ]
    if not (run / "tokenizer" / "tokenizer.json").is_file():
        return [f"--checkpoint: {run / 'tokenizer' / 'tokenizer.json'} does not exist (the run's tokenizer)"]
    return []


PART_CHECKS: dict[str, Callable[[EvalConfig], list[str]]] = {
    "perplexity": _perplexity,
    "probes": _probes,
    "needle": _needle,
    "multiple_choice": _multiple_choice,
}


def input_problems(
    cfg: EvalConfig,
    parts: Iterable[str],
    checkpoint: str | Path | None = None,
    output: str | Path | None = None,
    records: bool = True,
) -> list[str]:
    """One line per problem with the inputs of `parts` (and the checkpoint, output dir, run records)."""
    parts = list(parts)
    problems = _checkpoint(Path(checkpoint)) if checkpoint is not None else []
    if output is not None and Path(output).exists() and not Path(output).is_dir():
        problems.append(f"--output: {output} exists and is not a directory")
    if {"needle", "multiple_choice"} & set(parts):
        problems += _data_dir(cfg)
    for part in parts:
        problems += PART_CHECKS[part](cfg)
    if records:
        problems += _records(cfg)
    return list(dict.fromkeys(problems))  # a bad data_dir placeholder is reported once


def raise_problems(problems: list[str], origin: str) -> None:
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise ConfigError(
            f"{origin}: {len(problems)} missing or unusable input(s), nothing was run:\n{listing}"
        )


def require_inputs(
    cfg: EvalConfig,
    checkpoint: str | Path | None,
    output: str | Path | None = None,
    origin: str = "eval config",
) -> None:
    """Raise one ConfigError listing every problem with the inputs this evaluation will read."""
    raise_problems(input_problems(cfg, enabled_parts(cfg, checkpoint), checkpoint, output), origin)


def require_inloop_inputs(cfg: EvalConfig, origin: str = "eval config") -> None:
    """The inputs of the trainer's in-loop eval (held-out data and probes), checked at trainer start-up."""
    parts = [p for p in INLOOP_PARTS if getattr(cfg, p).enabled]
    raise_problems(input_problems(cfg, parts, records=False), origin)


def check_inloop_config(path: str | Path, key: str = "eval.hook") -> EvalConfig:
    """Load the trainer's in-loop eval config and check its inputs (at trainer start-up, not after training).

    Errors are one ConfigError naming `key` (the train config key that names this file) and every problem."""
    try:
        cfg = load_eval_config(path)
        require_inloop_inputs(cfg, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return cfg
