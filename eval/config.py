"""Validated eval configuration: one pydantic model per eval part, loaded from YAML plus `--set` overrides.

Path rules (the same in a checkout and after a wheel install):
- `data_dir` holds the benchmark files and needle haystacks; its default is the packaged `eval/data`
  (subsets of a few hundred items, see eval/data/NOTICE). Point it at a folder with the full files, laid
  out the same way (e.g. `--set data_dir=../shared/data`), to evaluate on every item;
- needle haystacks and multiple-choice files are relative to `data_dir`;
- every path (data_dir itself, held-out data, probe files, run records) is relative to the current
  directory after expanding the placeholders `{data_dir}` and `{configs}` (the shipped configs folder,
  dataengine.configio.CONFIG_DIR).
Whether those paths exist is checked by eval.checks before any model is loaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dataengine.configio import CONFIG_DIR, ConfigError, load_config
from dataengine.io.paths import is_uri

__all__ = ["CONFIG_DIR", "PACKAGED_DATA", "ConfigError", "EvalConfig", "load_eval_config"]

# The bundled benchmark subsets and haystacks: eval/data in a checkout, package data in the wheel.
PACKAGED_DATA = Path(__file__).resolve().parent / "data"
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
KNOWN_PLACEHOLDERS = {"{data_dir}", "{configs}"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """Held-out text: a shards directory (§3.3) or text/JSONL files.

    Documents are scored whole, as lm-evaluation-harness's loglikelihood_rolling does (a plain-text file is one
    document). The two caps are off by default; set, they are reported in results.json (perplexity.caps), since
    a capped number is not the whole held-out set's."""

    heldout: list[str] = Field(default_factory=list)
    split: str = "heldout"
    text_field: str = "text"
    domain_field: str = "domain"  # JSONL field naming the domain; files without it use the file stem
    max_docs_per_domain: int | None = Field(
        None, ge=1, description="the first N documents of each domain (reported); null: every document"
    )
    max_chars_per_doc: int | None = Field(
        None, ge=1, description="cut longer documents at a word boundary (reported); null: documents whole"
    )


class PerplexityConfig(_Strict):
    """Rolling windows over each document, as lm-evaluation-harness's loglikelihood_rolling (eval/perplexity.py).

    `window` tokens go into the model per forward pass; after the first window each scores `stride` new tokens
    and sees the window's other tokens as context. The defaults are the harness's: the model's trained sequence
    length (its config's n_positions / max_position_embeddings / n_ctx, or the trainer checkpoint's
    max_seq_len) and disjoint windows (stride = window)."""

    enabled: bool = True
    window: int | None = Field(
        None, ge=1, description="tokens the model reads per window; null: the model's trained sequence length"
    )
    max_window: int | None = Field(
        None, ge=1, description="an explicit cap on the window (quick runs); null: no cap"
    )
    stride: int | None = Field(
        None, ge=1, description="new tokens scored per window after the first; null: the window (disjoint)"
    )

    @model_validator(mode="after")
    def _stride_fits(self) -> PerplexityConfig:
        window = min(w for w in (self.window, self.max_window, 1 << 62) if w is not None)
        if self.stride is not None and self.stride > window:
            raise ValueError(f"perplexity.stride ({self.stride}) must be <= the window ({window})")
        return self


class ProbesConfig(_Strict):
    enabled: bool = True
    files: list[str] = Field(default_factory=lambda: ["{configs}/eval/probes.yaml"])
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
    """Zero-shot multiple choice as lm-evaluation-harness 0.4 scores it (eval/multiple_choice.py)."""

    enabled: bool = True
    tasks: list[Literal["hellaswag", "arc_easy", "arc_challenge", "piqa", "mmlu"]] = Field(
        default_factory=lambda: ["hellaswag", "arc_easy", "arc_challenge", "piqa", "mmlu"]
    )
    limit: int | None = Field(
        None, ge=1, description="the first N items of each task, as lm-eval's --limit; null: every item"
    )

    @model_validator(mode="before")
    @classmethod
    def _no_random_sample(cls, data: object) -> object:
        """`sample`/`seed` drew a random subset, which no other harness reproduces; say what replaced them."""
        if isinstance(data, dict) and {"sample", "seed"} & set(data):
            raise ValueError(
                "multiple_choice.sample and multiple_choice.seed are gone: use multiple_choice.limit "
                "(the first N items of each task, as lm-evaluation-harness's --limit)"
            )
        return data


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
    data_dir: str = str(PACKAGED_DATA)  # benchmark files and haystacks; a folder laid out like eval/data
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    token_budget: int = Field(8192, ge=1)  # padded tokens per forward pass (batch size x longest row)
    torch_threads: int | None = Field(None, ge=1)  # CPU threads for torch; None: torch's default
    # How requests (multiple-choice contexts, held-out documents) are tokenized. tokenizer: with the
    # tokenizer's own special tokens, as lm-evaluation-harness 0.4's hf model (0.4.13, add_bos_token unset):
    # BOS for Llama-style tokenizers, nothing for GPT-2/Qwen2-style ones and this project's; none: no special
    # tokens (the harness's add_bos_token=False); bos_or_eos: BOS, else EOS, before every context (this
    # project's behaviour before issue 18). A document's first token is always predicted after BOS, else EOS.
    context_prefix: Literal["tokenizer", "none", "bos_or_eos"] = Field(
        "tokenizer",
        description="request tokenization: tokenizer (its special tokens, as lm-eval 0.4), none, or bos_or_eos",
    )
    log_samples: bool = Field(
        True, description="write OUTPUT/samples.jsonl, one line per scored item (lm-eval's --log_samples)"
    )
    data: DataConfig = Field(default_factory=DataConfig)
    perplexity: PerplexityConfig = Field(default_factory=PerplexityConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    needle: NeedleConfig = Field(default_factory=NeedleConfig)
    multiple_choice: MultipleChoiceConfig = Field(default_factory=MultipleChoiceConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)

    def data_root(self) -> Path:
        """The `data_dir` folder (relative to the current directory; `{configs}` may appear in it)."""
        _check_placeholders(self.data_dir, "data_dir", KNOWN_PLACEHOLDERS - {"{data_dir}"})
        return Path(self.data_dir.replace("{configs}", str(CONFIG_DIR)))

    def resolve(self, path: str, key: str = "path") -> Path | str:
        """A user-facing path: placeholders expanded, relative to the current directory; a URI (s3://...)
        stays a string, since pathlib would turn `s3://b/k` into `s3:/b/k`.

        `key` names the config key in the ConfigError raised for an unknown placeholder."""
        _check_placeholders(path, key, KNOWN_PLACEHOLDERS)
        expanded = path.replace("{configs}", str(CONFIG_DIR))
        if "{data_dir}" in expanded:
            expanded = expanded.replace("{data_dir}", str(self.data_root()))
        return expanded if is_uri(expanded) else Path(expanded)

    def resolve_data(self, path: str, key: str = "path") -> Path | str:
        """A path inside `data_dir` (needle haystacks, benchmark files); absolute paths and URIs stay as they are."""
        candidate = self.resolve(path, key)
        return (
            candidate
            if isinstance(candidate, str) or candidate.is_absolute()
            else self.data_root() / candidate
        )


def _check_placeholders(path: str, key: str, known: set[str]) -> None:
    unknown = sorted(set(PLACEHOLDER.findall(path)) - known)
    if unknown:
        raise ConfigError(
            f"{key}: unknown placeholder {', '.join(unknown)} in {path!r} (known: {', '.join(sorted(known))})"
        )


def load_eval_config(path: str | Path | None, overrides: list[str] | None = None) -> EvalConfig:
    """Read and validate an eval config (errors name the file and the key, via dataengine.configio)."""
    return load_config(EvalConfig, path, overrides)
