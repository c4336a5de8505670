"""Settings of ``dataengine pack`` and the keys phase-3 configs share (a light module: the command
lines build their --help from it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dataengine.io.config import InputConfig
from dataengine.pack.holdout import ChannelField, Heldout, resolve_heldout
from dataengine.pack.inputs import reader_config


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReaderKey(Strict):
    """``input``: how documents are read, the settings of ``dataengine run``'s readers."""

    input: InputConfig = Field(
        default_factory=reader_config, description="how documents are read, as by `dataengine run`"
    )


class HeldoutKeys(Strict):
    """The held-out keys of commands that use a trained tokenizer: null = the tokenizer's setting."""

    heldout_fraction: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="null = the tokenizer's recorded setting (a tokenizer trained elsewhere: 0.01); "
        "a value that would hold out documents the tokenizer trained on is refused",
    )
    heldout_fraction_by_channel: dict[str, float] | None = Field(
        None, description="null = the tokenizer's recorded per-channel shares"
    )
    heldout_seed: int | None = Field(None, description="null = the tokenizer's recorded seed (else 0)")
    channel: list[ChannelField] | None = Field(
        None,
        description="row fields that name a document's channel ([lang], [category], [lang, category]); "
        "null = the tokenizer's recorded setting",
    )

    def heldout_for(self, meta: Mapping[str, Any], where: str) -> Heldout:
        """This config's held-out setting against a tokenizer's ``meta`` (``where``: its file)."""
        return resolve_heldout(
            meta.get("heldout"),
            where,
            self.heldout_fraction,
            self.heldout_seed,
            self.heldout_fraction_by_channel,
            self.channel,
        )


class PackConfig(HeldoutKeys, ReaderKey):
    """How to pack; defaults run on a laptop."""

    seq_len: int = Field(2048, ge=1, description="tokens per training sequence (rows hold seq_len + 1)")
    order: str = Field("input", description="input | shuffle | a registered order (e.g. similar)")
    seed: int = Field(0, description="seed of the shuffle order")
    dtype: Literal["auto", "uint16", "uint32"] = Field(
        "auto", description="auto = uint16 when the vocab fits"
    )
    rows_per_shard: int | None = Field(None, ge=1, description="null = about 64 MiB per shard")
    batch_size: int = Field(256, ge=1, description="documents per tokenize task (a block)")
    num_workers: int = Field(2, ge=1, description="tokenize tasks running at once")
    task_text_bytes: int = Field(512 << 10, ge=1, description="text per tokenize task (about)")
    block_bytes: int = Field(2 << 20, ge=1 << 16, description="Ray Data block size of the document reader")
