"""The experiment YAML: a base train config, a grid of axes over it, the eval of every run, the law fits.

    output: runs/experiments/NAME
    train: configs/train/tiny.yaml        # every run starts from this train config
    eval: configs/eval/experiment.yaml    # and is evaluated with this eval config
    set: {train.max_steps: 200}           # train overrides for every run
    prepare:                              # named commands run once, in order; skipped once `creates` exists
      shards: {run: "dataengine pack ... --output {output}/data/shards", creates: "{output}/data/shards"}
    axes:                                 # the grid is the product of the axes
      data:                               # label -> train overrides ...
        raw: {data.shards: "{output}/data/raw"}
        processed: {data.shards: "{output}/data/processed"}
      train.seed: [0, 1, 2]               # ... or a config key and its values
      ratio:
        r25: {set: {data.channel_weights: {zh: 0.25, en: 0.75}}}
        r50: {set: {data.channel_weights: {zh: 0.5, en: 0.5}}, fit: false}   # held out of the fits
    exclude: [{ratio: r50, train.seed: "2"}]   # combinations left out of the product

`{output}` in any string is the experiment's output directory. `include: [file.yaml]` merges shared keys
first (configs/experiments/common.yaml: the proxy model, the budget and the shared data); prepare steps are
a mapping so that a recipe adds its own steps after the included ones. A value with `fit: false` marks its runs as
held out: the law fits never see them and the report checks the fits' predictions against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dataengine.configio import ConfigError, apply_overrides, parse_overrides, read_yaml, validate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AxisValue(Strict):
    set: dict[str, Any] = Field(default_factory=dict)  # train config overrides (dotted keys)
    fit: bool = True  # False: held out of the law fits, used to check their predictions


class PrepareStep(Strict):
    run: str = Field(..., description="a command line; `dataengine` and `python` are this environment's")
    creates: str = Field(..., description="a path that exists once the step is done: then it is skipped")


class ScalingFitConfig(Strict):
    """Chinchilla L(N, D) over the runs' final held-out loss (eval/scaling.py)."""

    enabled: bool = False
    loss: str = "heldout_loss"  # a column of experiments.parquet
    params: Literal["params", "params_nonembed"] = "params_nonembed"
    budgets: list[float] = Field(default_factory=lambda: [1e15, 1e16, 1e17])
    bootstrap: int = Field(100, ge=0)


class MixtureFitConfig(Strict):
    """Domain ratio for continued pretraining: D-CPT law per domain, Data Mixing Law, constrained choice."""

    enabled: bool = False
    domain: str = Field("zh", description="the channel whose share is the domain ratio r")
    general: str = Field("en", description="the channel whose loss stands for general ability")
    tolerance: float = Field(0.02, ge=0, description="allowed relative rise of general loss over r = 0")
    bootstrap: int = Field(100, ge=0)
    verify: bool = Field(False, description="train one run per seed at the recommended ratio, held out")


class FitsConfig(Strict):
    scaling: ScalingFitConfig = Field(default_factory=ScalingFitConfig)
    mixture: MixtureFitConfig = Field(default_factory=MixtureFitConfig)


class ExperimentConfig(Strict):
    output: str
    train: str = "configs/train/tiny.yaml"
    eval: str | None = Field(
        "configs/eval/experiment.yaml", description="null: no eval (trainer losses only)"
    )
    set: dict[str, Any] = Field(default_factory=dict)
    eval_set: dict[str, Any] = Field(default_factory=dict)
    prepare: dict[str, PrepareStep] = Field(default_factory=dict)  # in order (YAML keeps mapping order)
    axes: dict[str, dict[str, AxisValue]] = Field(..., min_length=1)
    exclude: list[dict[str, str]] = Field(
        default_factory=list, description="combinations left out: a run matching every label of an entry"
    )
    fits: FitsConfig = Field(default_factory=FitsConfig)
    cpus_per_run: int = Field(1, ge=1, description="Ray CPUs (and torch threads) per run")

    @field_validator("axes", mode="before")
    @classmethod
    def _expand_axes(cls, axes: Any) -> Any:
        """`key: [v1, v2]` becomes labels v1, v2 setting that key; a plain mapping of overrides becomes
        {set: mapping}."""
        if not isinstance(axes, dict):
            return axes
        out: dict[str, Any] = {}
        for name, values in axes.items():
            if isinstance(values, list):
                out[name] = {str(v): {"set": {name: v}} for v in values}
            elif isinstance(values, dict):
                out[name] = {
                    str(label): v if isinstance(v, dict) and set(v) <= {"set", "fit"} else {"set": v}
                    for label, v in values.items()
                }
            else:
                out[name] = values
        return out

    @field_validator("exclude", mode="before")
    @classmethod
    def _labels_as_text(cls, exclude: Any) -> Any:
        if isinstance(exclude, list):
            return [{k: str(v) for k, v in e.items()} if isinstance(e, dict) else e for e in exclude]
        return exclude

    @model_validator(mode="after")
    def _labels_are_path_safe(self) -> ExperimentConfig:
        for entry in self.exclude:
            for name, label in entry.items():
                if label not in self.axes.get(name, {}):
                    raise ValueError(f"exclude: {name}={label!r} is not an axis label ({list(self.axes)})")
        for name, values in self.axes.items():
            for label in values:
                if not label or any(c in label for c in "/\\ ") or label.startswith("."):
                    raise ValueError(f"axes.{name}: label {label!r} must be a plain name (it names run dirs)")
        return self

    def expand(self, text: str) -> str:
        return text.replace("{output}", self.output)


def load_experiment_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """`--set set.train.max_steps=50` sets the train key `train.max_steps` of every run (the rest of a key
    under `set.` / `eval_set.` is one dotted key); other overrides set experiment keys."""
    data = read_yaml(path)
    plain = []
    for item in overrides or []:
        section, _, rest = item.partition(".")
        if section in ("set", "eval_set") and rest:
            [(key, value)] = parse_overrides([rest])
            data.setdefault(section, {})[".".join(key)] = value
        else:
            plain.append(item)
    apply_overrides(data, plain)
    origin = str(path) + (" with --set " + " ".join(overrides) if overrides else "")
    if not isinstance(data.get("axes", {}), dict):
        raise ConfigError(f"{origin}: axes: expected a mapping of axis name -> values")
    return validate(ExperimentConfig, data, origin)
