"""Which sequences each global batch holds: seeded permutations, one per epoch, as Megatron and
OLMo-core do, so one epoch reads every sequence exactly once.

Sequences are grouped in pools: one pool of everything for the natural mix, one per channel when
`data.channel_weights` is given. Each pool is an endless stream of epochs; epoch e of pool p is a
permutation seeded by (seed, p, e). A global batch takes its seats from the pools in the order of
Webster's sequential apportionment (the next seat goes to the pool with the smallest
(taken + 0.5) / weight), so every prefix of the run meets the channel weights to within one sequence
and a channel's data is used once per channel epoch.

Usage awareness comes from `prior` use counts (earlier runs the config names): within an epoch,
sequences are ordered by a weighted random permutation (Efraimidis-Spirakis keys E / w with
w = decay ** uses), so less used data comes first without any being dropped; a sequence whose
prior uses plus the epoch index reach `max_repeats` leaves the pool.

The state is the number of seats each pool has given, per step: O(pools) to save, and a batch is
O(batch size) work apart from one permutation per epoch (O(sequences), amortised over the epoch).
The global batch is the same on every rank, so the order does not depend on the world size.
"""

from __future__ import annotations

import numpy as np


class DataExhaustedError(RuntimeError):
    """A pool with a positive weight has no sequence left (all reached usage.max_repeats)."""


NATURAL_POOL = -1  # seed component of the single pool of the natural mix


class Sampler:
    KEPT_STEPS = 4  # drawn batches and state snapshots kept (the trainer draws one step ahead)

    def __init__(
        self,
        channels: np.ndarray,
        channel_names: list[str],
        *,
        seed: int,
        batch_size: int,
        channel_weights: dict[str, float] | None = None,
        decay: float = 1.0,
        max_repeats: int | None = None,
        prior: np.ndarray | None = None,
    ):
        self.seed, self.batch_size, self.decay, self.max_repeats = seed, batch_size, decay, max_repeats
        self.prior = prior if prior is not None and prior.any() else None
        self.names, self.pool_ids, self.members, self.weights = _pools(
            channels, channel_names, channel_weights or {}
        )
        dtype = np.int32 if len(channels) < 2**31 else np.int64
        self.members = [m.astype(dtype) for m in self.members]
        self.next_step = 0
        self.taken = np.zeros(len(self.members), dtype=np.int64)
        self._snapshots: dict[int, np.ndarray] = {0: self.taken.copy()}
        self._drawn: dict[int, np.ndarray] = {}
        self._orders: dict[tuple[int, int], np.ndarray] = {}
        self._sizes: dict[int, np.ndarray] = {}  # pool -> cumulative counts by prior use

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self, step: int) -> dict:
        """The state at the start of `step` (which must be a recent step)."""
        if step not in self._snapshots:
            raise KeyError(f"sampler state of step {step} is no longer kept (at {self.next_step})")
        return {"step": step, "taken": self._snapshots[step].tolist()}

    def load_state_dict(self, state: dict, prior: np.ndarray | None) -> None:
        """Continue from a checkpoint: its position and the prior use counts the run started with."""
        if len(state["taken"]) != len(self.members):
            raise ValueError(
                f"sampler state has {len(state['taken'])} pools, the config gives {len(self.members)} "
                "(data.channel_weights changed since the checkpoint)"
            )
        self.next_step = state["step"]
        self.taken = np.array(state["taken"], dtype=np.int64)
        self._snapshots = {self.next_step: self.taken.copy()}
        self._drawn = {}
        self.prior = prior if prior is not None and prior.any() else None
        self._orders, self._sizes = {}, {}

    # ---- drawing -----------------------------------------------------------------------------
    def draw(self, step: int) -> np.ndarray:
        """Global batch (sequence indices, in sample order) of 0-based `step`; steps are drawn in
        order (a recent one is answered again from memory)."""
        if step in self._drawn:
            return self._drawn[step]
        if step != self.next_step:
            raise ValueError(f"the sampler is at step {self.next_step}, asked for step {step}")
        seats = self._seats()
        batch = np.empty(self.batch_size, dtype=np.int64)
        taken = self.taken.copy()
        for pool in range(len(self.members)):
            mine = np.flatnonzero(seats == pool)
            batch[mine] = self._take(pool, int(taken[pool]), len(mine))
            taken[pool] += len(mine)
        self.taken = taken  # only now: a step that runs out of data leaves the state as it was
        self.next_step += 1
        self._drawn[step] = batch
        self._snapshots[self.next_step] = self.taken.copy()
        for old in [s for s in self._snapshots if s < self.next_step - self.KEPT_STEPS]:
            del self._snapshots[old]
            self._drawn.pop(old, None)
        return batch

    def _seats(self) -> np.ndarray:
        """Pool of each seat of the next batch: Webster's sequential rule on the seats given so far.
        Seat j of pool p sits at (taken_p + 0.5 + j) / w_p; the batch is the first batch_size of
        all pools' seats merged (ties to the lower pool)."""
        if len(self.members) == 1:
            return np.zeros(self.batch_size, dtype=np.int64)
        ahead = np.arange(self.batch_size, dtype=np.float64)
        times = ((self.taken[:, None] + 0.5 + ahead[None, :]) / self.weights[:, None]).ravel()
        pools = np.repeat(np.arange(len(self.members)), self.batch_size)
        return pools[np.lexsort((pools, times))[: self.batch_size]]

    def _take(self, pool: int, start: int, n: int) -> np.ndarray:
        """Positions start .. start+n-1 of the pool's stream of epochs."""
        out = np.empty(n, dtype=np.int64)
        epoch, begin, filled = 0, 0, 0
        while filled < n:
            size = self.epoch_size(pool, epoch)
            if size == 0:
                raise DataExhaustedError(
                    f"{self.names[pool]}: every sequence has been used usage.max_repeats={self.max_repeats} "
                    f"times after {epoch} epochs (raise usage.max_repeats, give the channel weight 0, or add data)"
                )
            lo = start + filled
            if lo < begin + size:
                count = min(n - filled, begin + size - lo)
                out[filled : filled + count] = self.epoch_order(pool, epoch)[lo - begin : lo - begin + count]
                filled += count
            begin += size
            epoch += 1
        return out

    def epoch_size(self, pool: int, epoch: int) -> int:
        """Sequences in the pool's epoch `epoch`: those whose prior uses + epoch < max_repeats."""
        members = self.members[pool]
        if self.max_repeats is None:
            return len(members)
        if self.prior is None:
            return len(members) if epoch < self.max_repeats else 0
        if pool not in self._sizes:  # by prior use: O(pool) once, not per draw
            per_use = np.bincount(
                np.minimum(self.prior[members], self.max_repeats), minlength=self.max_repeats + 1
            )
            self._sizes[pool] = np.cumsum(per_use)
        limit = self.max_repeats - epoch  # prior uses must stay below this
        return int(self._sizes[pool][limit - 1]) if limit > 0 else 0

    def epoch_order(self, pool: int, epoch: int) -> np.ndarray:
        """The pool's sequences in epoch `epoch`'s order (kept for the current and next epoch)."""
        key = (pool, epoch)
        if key not in self._orders:
            members = self.members[pool]
            if self.max_repeats is not None and self.prior is not None:
                members = members[self.prior[members] + epoch < self.max_repeats]
            rng = np.random.default_rng([self.seed, self.pool_ids[pool] + 1, epoch])
            if self.prior is None or self.decay == 1.0:
                order = rng.permutation(members)
            else:  # Efraimidis-Spirakis: sort by log(E) - uses * log(decay), ties in member order
                keys = np.log(rng.exponential(size=len(members))) - self.prior[members] * np.log(self.decay)
                order = members[np.argsort(keys, kind="stable")]
            for old in [k for k in self._orders if k[0] == pool and k[1] < epoch - 1]:
                del self._orders[old]
            self._orders[key] = order
        return self._orders[key]


def _pools(
    channels: np.ndarray, names: list[str], weights: dict[str, float]
) -> tuple[list[str], list[int], list[np.ndarray], np.ndarray]:
    """(pool names, seed ids, member indices, normalised weights): one pool for the natural mix, else
    one per channel with a positive weight. Every channel present must be named (0 excludes one)."""
    if not weights:
        return ["all data"], [NATURAL_POOL], [np.arange(len(channels))], np.ones(1)
    present = {names[c] for c in np.unique(channels)}
    unknown, missing = sorted(set(weights) - set(names)), sorted(present - set(weights))
    if unknown or missing:
        raise ValueError(
            f"data.channel_weights: unknown channels {unknown}, unnamed channels {missing} "
            f"(the shards have {names}; give every channel a weight, 0 to exclude it)"
        )
    pools = [(c, n) for c, n in enumerate(names) if weights.get(n, 0.0) > 0 and n in present]
    if not pools:
        raise ValueError("data.channel_weights: every channel present has weight 0")
    members = [np.flatnonzero(channels == c) for c, _ in pools]
    w = np.array([weights[n] for _, n in pools], dtype=np.float64)
    return [f"channel {n!r}" for _, n in pools], [c for c, _ in pools], members, w / w.sum()
