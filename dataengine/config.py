"""The pipeline config: what `dataengine run CONFIG` validates before any work starts."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from dataengine.configio import load_config
from dataengine.dedup.config import DedupConfig, MinHashConfig
from dataengine.io.config import InputConfig
from dataengine.stages.registry import STAGES


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


StagesConfig = create_model(
    "StagesConfig",
    __base__=Strict,
    __doc__="Per-document stages, run in this order; `null` turns a stage off.",
    **{
        stage.name: (stage.config_class | None, Field(default_factory=stage.config_class)) for stage in STAGES
    },
)


class DecideConfig(Strict):
    # Annotate-then-decide: every stage's signals are computed for every document so a user can
    # re-threshold without recomputing; early_exit trades that for speed.
    early_exit: bool = False


class RayConfig(Strict):
    address: str | None = None  # a Ray cluster address; None = $RAY_ADDRESS, else a local instance
    # Where phase 1 runs its units. `local`: in this process, one stage chain, no Ray (no start-up cost:
    # seconds on a laptop-sized job). `ray`: actors on Ray. `auto`: local when Ray is not already
    # connected, no address is given (here or $RAY_ADDRESS) and the inputs total at most local_max_bytes.
    executor: Literal["auto", "local", "ray"] = "auto"
    local_max_bytes: int = Field(default=64 * 2**20, ge=0)
    num_workers: int | None = Field(default=None, ge=1)  # actors; None = the cluster's CPUs
    batch_size: int = Field(default=256, ge=1)  # documents per processing/writing batch
    # GPUs each phase-1 actor holds (fractions share one); None = the cluster's GPUs shared evenly among
    # the actors when a stage's model is an encoder (classifiers/encoder.py), else none
    num_gpus_per_worker: float | None = Field(default=None, ge=0)


class OutputConfig(Strict):
    compression: Literal["zstd", "snappy", "gzip", "none"] = "zstd"
    report: bool = True  # write report.html at the end of each run
    # `minhash: list<uint32>` on kept rows (parameters from dedup.minhash, else MinHashConfig defaults);
    # null = exactly when the dedup phase runs MinHash, so phase 2 reuses them instead of recomputing.
    minhash: bool | None = None


class PipelineConfig(Strict):
    inputs: list[str] = Field(default_factory=list)  # paths, globs or URIs; --input adds to these
    output: str | None = None  # run directory; --output overrides
    input: InputConfig = Field(default_factory=InputConfig)
    stages: StagesConfig = Field(default_factory=StagesConfig)
    decide: DecideConfig = Field(default_factory=DecideConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    write: OutputConfig = Field(default_factory=OutputConfig)
    # phase 2 after phase 1: phase 1 then writes OUT/phase1/, dedup OUT/dedup/rejected, and the final kept
    # set lands in OUT/kept; null = off (phase 1 writes OUT/kept and OUT/rejected itself)
    dedup: DedupConfig | None = None

    @model_validator(mode="after")
    def _survivor_has_its_score(self) -> PipelineConfig:
        if self.dedup is not None and self.dedup.survivor == "quality" and self.stages.quality is None:
            raise ValueError(
                "dedup.survivor 'quality' ranks by the quality stage's score, but stages.quality is null; "
                "turn the stage on or set dedup.survivor to longest or earliest"
            )
        return self

    def model_paths(self) -> list[str]:
        """The classifier files the stages load (packaged defaults included)."""
        paths = []
        if self.stages.category is not None:
            paths.append(self.stages.category.path())
        if self.stages.quality is not None:
            paths += [self.stages.quality.model_path(lang) for lang in self.stages.quality.models]
        return paths

    def signature_config(self) -> MinHashConfig | None:
        """The MinHash parameters phase 1 writes signatures with, or None when it writes none."""
        dedup_minhash = self.dedup.minhash if self.dedup is not None and self.dedup.minhash.enabled else None
        if self.write.minhash is None:
            return dedup_minhash
        if not self.write.minhash:
            return None
        return self.dedup.minhash if self.dedup is not None else MinHashConfig()


def load_pipeline_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> PipelineConfig:
    return load_config(PipelineConfig, path, overrides)
