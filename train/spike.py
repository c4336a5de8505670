"""Loss-spike guard: a step whose loss or gradient norm sits far above the recent window is a spike.

z = (x - mean) / std over the last `window` accepted steps, for loss and gradient norm; a non-finite
value is always a spike. Only accepted steps enter the window, so one bad batch does not mask the next.
The trainer applies the policy (skip the update, or roll back to the last checkpoint and skip the batch).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass
class Verdict:
    spike: bool
    z_loss: float
    z_grad: float


def _z(value: float, history: list[float]) -> float:
    mean = sum(history) / len(history)
    var = sum((h - mean) ** 2 for h in history) / (len(history) - 1)
    # A floor on std keeps a perfectly flat window from turning noise into infinite z.
    std = max(math.sqrt(var), 1e-3 * abs(mean), 1e-12)
    return (value - mean) / std


class SpikeGuard:
    def __init__(self, window: int, min_history: int, z_threshold: float):
        self.min_history, self.z_threshold = min_history, z_threshold
        self.losses: deque[float] = deque(maxlen=window)
        self.grads: deque[float] = deque(maxlen=window)

    def check(self, loss: float, grad_norm: float) -> Verdict:
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            return Verdict(
                True,
                math.inf if not math.isfinite(loss) else 0.0,
                math.inf if not math.isfinite(grad_norm) else 0.0,
            )
        if len(self.losses) < self.min_history:
            return Verdict(False, 0.0, 0.0)
        z_loss, z_grad = _z(loss, list(self.losses)), _z(grad_norm, list(self.grads))
        return Verdict(max(z_loss, z_grad) > self.z_threshold, z_loss, z_grad)

    def accept(self, loss: float, grad_norm: float) -> None:
        self.losses.append(loss)
        self.grads.append(grad_norm)

    def state_dict(self) -> dict:
        return {"losses": list(self.losses), "grads": list(self.grads)}

    def load_state_dict(self, state: dict) -> None:
        self.losses.clear()
        self.grads.clear()
        self.losses.extend(state["losses"])
        self.grads.extend(state["grads"])
