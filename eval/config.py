"""Validated eval configuration: one pydantic model per eval part, loaded from YAML plus `--set` overrides.

Path rules (so a config runs from anywhere without absolute paths):
- `shared_data` is relative to the project root (default: ../shared/data beside the project);
- needle haystacks and multiple-choice files are relative to `shared_data`;
- every other path (held-out data, probe files, scaling records) is relative to the current directory,
  after expanding the placeholders `{project}` and `{shared_data}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.configio import ConfigError, load_config

__all__ = ["ConfigError", "EvalConfig", "load_eval_config"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Held-out text: a shards directory (§3.3) or text/JSONL files."""

    heldout: list[str] = Field(default_factory=list)
    split: str = "heldout"
    text_field: str = "text"
    domain_field: str = "domain"  # JSONL field naming the domain; files without it use the file stem
    max_docs_per_domain: int = Field(50, ge=1)
    max_chars_per_doc: int = Field(20_000, ge=1)


class PerplexityConfig(_Strict):
    enabled: bool = True
    window: int | None = Field(None, ge=2)  # None: the model's context length, capped at max_window
    max_window: int = Field(1024, ge=2)
    stride: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexityConfig:
        if self.window is not None and self.stride > self.window:
            raise ValueError(
                f"perplexity.stride ({self.stride}) must be <= perplexity.window ({self.window})"
            )
        return self


class ProbesConfig(_Strict):
    enabled: bool = True
    files: list[str] = Field(default_factory=lambda: ["{project}/configs/eval/probes.yaml"])
    history: str = "probe_history.jsonl"  # inside the output dir; one line per evaluated checkpoint


class NeedleConfig(_Strict):
    enabled: bool = True
    haystack: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "en": ["reference/wikitext-2_valid.txt"],
            "zh": ["zh/cmrc2018_zhwiki_contexts.jsonl"],
        }
    )
    lengths: list[int] = Field(default_factory=lambda: [256, 512, 1024])
    depths: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    trials: int = Field(3, ge=1)
    distractors: int = Field(4, ge=1)
    digits: int = Field(5, ge=2, le=9)
    seed: int = 0

    @model_validator(mode="after")
    def _depths_in_range(self) -> NeedleConfig:
        bad = [d for d in self.depths if not 0.0 <= d <= 1.0]
        if bad:
            raise ValueError(f"needle.depths must lie in [0, 1], got {bad}")
        if self.distractors >= 9 * 10 ** (self.digits - 1):
            raise ValueError(
                f"needle.distractors ({self.distractors}) needs more distinct {self.digits}-digit keys"
            )
        return self


class MultipleChoiceConfig(_Strict):
    enabled: bool = True
    tasks: list[Literal["hellaswag", "arc_easy", "arc_challenge", "piqa", "mmlu"]] = Field(
        default_factory=lambda: ["hellaswag", "arc_easy", "arc_challenge", "piqa", "mmlu"]
    )
    sample: int | None = Field(200, ge=1)  # per task; None: every question
    seed: int = 0


class ScalingConfig(_Strict):
    """Run records (JSONL: params, tokens, loss) for the L(N, D) fit; empty: skipped."""

    records: str | None = None
    budgets: list[float] = Field(default_factory=lambda: [1e18, 1e19, 1e20, 1e21])
    bootstrap: int = Field(200, ge=0)
    seed: int = 0


class MixtureConfig(_Strict):
    """Continued-pretraining runs (JSONL: ratio, domain_loss, general_loss); empty: skipped."""

    records: str | None = None
    tolerance: float = Field(0.02, ge=0)  # allowed relative rise of general loss over the ratio-0 fit


class EvalConfig(_Strict):
    shared_data: str = "../shared/data"
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    token_budget: int = Field(8192, ge=1)  # padded tokens per forward pass (batch size x longest row)
    torch_threads: int | None = Field(None, ge=1)  # CPU threads for torch; None: torch's default
    data: DataConfig = Field(default_factory=DataConfig)
    perplexity: PerplexityConfig = Field(default_factory=PerplexityConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    needle: NeedleConfig = Field(default_factory=NeedleConfig)
    multiple_choice: MultipleChoiceConfig = Field(default_factory=MultipleChoiceConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)

    def shared_data_dir(self) -> Path:
        path = Path(self.shared_data)
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()

    def resolve(self, path: str) -> Path:
        """A user-facing path: placeholders expanded, relative to the current directory."""
        expanded = path.replace("{project}", str(PROJECT_ROOT)).replace(
            "{shared_data}", str(self.shared_data_dir())
        )
        return Path(expanded)

    def resolve_shared(self, path: str) -> Path:
        """A path inside the shared data folder (needle haystacks, benchmark files)."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.shared_data_dir() / candidate


def load_eval_config(path: str | Path | None, overrides: list[str] | None = None) -> EvalConfig:
    """Read and validate an eval config (errors name the file and the key, via dataengine.configio)."""
    return load_config(EvalConfig, path, overrides)
