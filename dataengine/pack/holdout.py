"""Deterministic held-out selection by document-id hash, and the one held-out setting of a tokenizer.

The same rule decides which documents the tokenizer never trains on and which documents go to
the packed ``heldout`` split, so held-out compression and held-out loss are measured on text
the tokenizer has not seen. A hash of the id (not a random draw) makes the choice independent
of order, batching and the number of workers.

The setting is chosen once, at ``tokenizer train``, and recorded in the tokenizer's ``.meta.json``
(``heldout``). ``pack`` and ``tokenizer report`` reuse it; a value they are given must hold out only
documents the tokenizer never trained on (``Heldout.within``), else they refuse.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

_SCALE = float(1 << 64)
DEFAULT_FRACTION = 0.01  # the one default, for tokenizers trained here and for foreign ones


def id_fraction(doc_id: str, seed: int = 0) -> float:
    """A stable, uniform number in [0, 1) for a document id."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def is_heldout(doc_id: str, fraction: float, seed: int = 0) -> bool:
    return fraction > 0 and id_fraction(doc_id, seed) < fraction


ChannelField = Literal["lang", "category"]


class Heldout(BaseModel):
    """Which documents are held out: a share of ids per channel. A document's channel is named by the
    row fields in `channel` (`lang`, `category`, or both: `en/news`), recorded with the setting so that
    pack and report name channels as the tokenizer did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(DEFAULT_FRACTION, ge=0.0, lt=1.0)
    seed: int = 0
    by_channel: dict[str, float] = Field(default_factory=dict)
    channel: tuple[ChannelField, ...] = Field(("lang",), min_length=1)

    def channel_of(self, row: Mapping[str, Any]) -> str:
        """The document's channel: its `channel` fields' values joined by `/` (missing: unknown)."""
        return "/".join(str(row.get(name) or "unknown") for name in self.channel)

    def fraction_of(self, channel: str) -> float:
        return self.by_channel.get(channel, self.fraction)

    def holds(self, doc_id: str, channel: str) -> bool:
        return is_heldout(doc_id, self.fraction_of(channel), self.seed)

    def split_rows(self, batch: pa.Table) -> tuple[list[str], np.ndarray]:
        """Each row's channel and whether it is held out (a table with ``id`` and the channel fields)."""
        columns = {name: batch[name].to_pylist() for name in self.channel}
        channels = [
            self.channel_of({name: values[i] for name, values in columns.items()})
            for i in range(batch.num_rows)
        ]
        held = np.fromiter(
            (self.holds(i, c) for i, c in zip(batch["id"].to_pylist(), channels, strict=True)),
            dtype=bool,
            count=batch.num_rows,
        )
        return channels, held

    def within(self, trained: Heldout) -> bool:
        """True when every document this setting holds out was held out by ``trained`` (so the tokenizer
        never saw it): the same seed and no channel's fraction larger, or nothing held out at all."""
        channels = set(self.by_channel) | set(trained.by_channel)
        mine = [self.fraction, *(self.fraction_of(c) for c in channels)]
        if max(mine) == 0:
            return True
        theirs = [trained.fraction, *(trained.fraction_of(c) for c in channels)]
        return self.seed == trained.seed and all(a <= b for a, b in zip(mine, theirs, strict=True))


def resolve_heldout(
    recorded: Mapping[str, Any] | None,
    where: str,
    fraction: float | None = None,
    seed: int | None = None,
    by_channel: Mapping[str, float] | None = None,
    channel: Sequence[str] | None = None,
) -> Heldout:
    """The held-out setting to use: the tokenizer's ``recorded`` one (else the default, for a tokenizer
    trained elsewhere), with the values given explicitly; a given value that would hold out documents
    the tokenizer trained on raises ValueError naming ``where`` the recorded setting is."""
    base = Heldout(**recorded) if recorded else Heldout()
    given = {
        k: v
        for k, v in (("fraction", fraction), ("seed", seed), ("by_channel", by_channel), ("channel", channel))
        if v is not None
    }
    if not given:
        return base
    chosen = base.model_copy(update={**given, "by_channel": dict(given.get("by_channel", base.by_channel))})
    chosen = Heldout.model_validate(chosen.model_dump())
    if recorded and chosen.channel != base.channel and (chosen.by_channel or base.by_channel):
        raise ValueError(
            f"channel={list(chosen.channel)}: {where} holds out a share per channel of {list(base.channel)} "
            f"({base.by_channel}); the same shares cannot be read by other channels. Leave channel unset, "
            "or retrain the tokenizer with the new channel"
        )
    if recorded and not chosen.within(base):
        raise ValueError(
            f"heldout_fraction={chosen.fraction} heldout_seed={chosen.seed} "
            f"heldout_fraction_by_channel={chosen.by_channel} would hold out documents the tokenizer trained "
            f"on: {where} records heldout fraction={base.fraction} seed={base.seed} "
            f"by_channel={base.by_channel}. Leave the heldout keys unset to use the recorded setting (or give "
            "a smaller fraction with the same seed), or retrain the tokenizer with the new setting"
        )
    return chosen
