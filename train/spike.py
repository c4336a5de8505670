"""Loss-spike guard, after OLMo-core's SkipStepOptimizer: a step whose loss or gradient norm sits more
than `z_threshold` standard deviations above the recent window is a spike, and so is a non-finite one.

Every finite step enters the window, skipped ones included: a skipped step leaves the weights as they
were, so the next batch often shows the same high norm, and a window of accepted steps only would
then flag every step after it. No verdict before `min_history` steps (by default max(64, warmup):
early training moves too fast for a window to describe it). The test is one-sided: a sudden drop
is not a spike.

`is_spike` compares on the device, and the trainer gates the optimizer step with it, so the decision
needs no host round trip; `observe` then takes the values the host reads anyway. Disabled, only
non-finite values are spikes.
"""

from __future__ import annotations

import math
from collections import deque

import torch


def _mean_std(history: deque[float]) -> tuple[float, float]:
    mean = sum(history) / len(history)
    var = sum((h - mean) ** 2 for h in history) / (len(history) - 1)
    # A floor on std keeps a perfectly flat window from turning noise into infinite z.
    return mean, max(math.sqrt(var), 1e-3 * abs(mean), 1e-12)


class SpikeGuard:
    def __init__(self, window: int, min_history: int, z_threshold: float, enabled: bool = True):
        self.min_history, self.z_threshold, self.enabled = min_history, z_threshold, enabled
        self.losses: deque[float] = deque(maxlen=window)
        self.grads: deque[float] = deque(maxlen=window)

    @property
    def ready(self) -> bool:
        return self.enabled and len(self.losses) >= self.min_history

    def limits(self) -> tuple[float, float]:
        """(loss, gradient norm) above which the next step is a spike; infinite before min_history."""
        if not self.ready:
            return math.inf, math.inf
        (lm, ls), (gm, gs) = _mean_std(self.losses), _mean_std(self.grads)
        return lm + self.z_threshold * ls, gm + self.z_threshold * gs

    def z_scores(self, loss: float, grad_norm: float) -> tuple[float, float]:
        """How far above the window a step sits (for the spike log); 0 before min_history."""
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return (
                math.inf if not math.isfinite(loss) else 0.0,
                math.inf if not math.isfinite(grad_norm) else 0.0,
            )
        if not self.ready:
            return 0.0, 0.0
        (lm, ls), (gm, gs) = _mean_std(self.losses), _mean_std(self.grads)
        return (loss - lm) / ls, (grad_norm - gm) / gs

    def is_spike(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> torch.Tensor:
        """The verdict as a tensor on the values' device (no host round trip): non-finite always, above
        the limits once the window has min_history steps and the z-test is enabled."""
        spike = ~(torch.isfinite(loss) & torch.isfinite(grad_norm))
        if self.ready:
            loss_limit, grad_limit = self.limits()
            spike = spike | (loss > loss_limit) | (grad_norm > grad_limit)
        return spike

    def observe(self, loss: float, grad_norm: float) -> None:
        if math.isfinite(loss) and math.isfinite(grad_norm):
            self.losses.append(loss)
            self.grads.append(grad_norm)

    def state_dict(self) -> dict:
        return {"losses": list(self.losses), "grads": list(self.grads)}

    def load_state_dict(self, state: dict) -> None:
        self.losses.clear()
        self.grads.clear()
        self.losses.extend(state["losses"])
        self.grads.extend(state["grads"])
