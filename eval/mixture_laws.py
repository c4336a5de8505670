"""Mixture laws for choosing data ratios from small runs.

1. D-CPT law (Que et al., 2024) for continued pretraining with a domain ratio r:
   L(N, D, r) = E + A / N^alpha + B * r^eta / D^beta + C / (r + eps)^gamma,
   fitted separately to the domain loss (r = the domain's share) and to the general loss (r = the general
   share, 1 - domain share). With a single model size the A / N^alpha term is a constant and folds into E.
   Fitted by least squares on relative residuals, parameters in log space where they must be positive,
   from several starts.
2. Data Mixing Law (Ye et al., 2024) over any number of domains: L_i(r) = c_i + k_i * exp(sum_j t_ij r_j),
   r the mixture proportions (the last one is implied by the others, so it is dropped from the exponent).
3. The recommended ratio: argmin_r L_domain(N, D, r) subject to (L_general(r) - L_general(0)) / L_general(0)
   <= tolerance, with a bootstrap over runs for its uncertainty.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import least_squares
from threadpoolctl import threadpool_limits

EPS = 0.01  # D-CPT's r' = r + eps keeps C / r'^gamma finite at r = 0


@dataclass(frozen=True)
class DcptLaw:
    E: float
    A: float
    alpha: float
    B: float
    eta: float
    beta: float
    C: float
    gamma: float

    def __call__(self, n, d, r) -> np.ndarray:
        n, d, r = (np.asarray(x, dtype=float) for x in (n, d, r))
        size = self.A / np.power(n, self.alpha) if self.A else 0.0
        return (
            self.E
            + size
            + self.B * np.power(r, self.eta) / np.power(d, self.beta)
            + self.C / np.power(r + EPS, self.gamma)
        )


def _dcpt_from(theta: np.ndarray, with_size: bool) -> DcptLaw:
    if with_size:
        e, a, alpha, b, eta, beta, c, gamma = theta
        return DcptLaw(np.exp(e), np.exp(a), alpha, np.exp(b), eta, beta, np.exp(c), gamma)
    e, b, eta, beta, c, gamma = theta
    return DcptLaw(np.exp(e), 0.0, 0.0, np.exp(b), eta, beta, np.exp(c), gamma)


def _theta_of(law: DcptLaw, with_size: bool) -> list[float]:
    size = [np.log(law.A), law.alpha] if with_size else []
    return [np.log(law.E), *size, np.log(law.B), law.eta, law.beta, np.log(law.C), law.gamma]


def fit_dcpt(n, d, r, loss, start: DcptLaw | None = None) -> DcptLaw:
    """Least squares on relative residuals from a small grid of starts, or from `start` alone (a bootstrap
    refit starts at the full fit); the A / N^alpha term only when the points span more than one size."""
    n, d, r, loss = (np.asarray(x, dtype=float) for x in (n, d, r, loss))
    if len(loss) < 6:
        raise ValueError(f"D-CPT law: need at least 6 points, got {len(loss)}")
    with_size = len(np.unique(n)) > 1

    def residual(theta):
        return _dcpt_from(theta, with_size)(n, d, r) / loss - 1

    lower = [-20, *([-20, 0.0] if with_size else []), -20, 0.0, 0.0, -20, 0.0]
    upper = [10, *([30, 2.0] if with_size else []), 30, 3.0, 2.0, 10, 3.0]
    if start is not None and (start.A > 0) == with_size:
        starts = [np.clip(_theta_of(start, with_size), lower, upper)]
    else:
        floor = np.log(max(loss.min() * 0.5, 1e-6))
        size = [np.log(10.0), 0.3] if with_size else []
        starts = [
            [floor, *size, np.log(10.0), eta, beta, np.log(0.1), gamma]
            for eta, beta, gamma in itertools.product((0.5, 1.0), (0.1, 0.3, 0.6), (0.1, 0.5))
        ]
    best = None
    with threadpool_limits(limits=1, user_api="blas"):
        for theta in starts:
            result = least_squares(residual, theta, bounds=(lower, upper), loss="soft_l1", f_scale=0.01)
            if best is None or result.cost < best.cost:
                best = result
    return _dcpt_from(best.x, with_size)


@dataclass(frozen=True)
class MixingLaw:
    """L(r) = c + k * exp(t . r[:-1]) for one domain's loss over mixture proportions r."""

    c: float
    k: float
    t: tuple[float, ...]

    def __call__(self, ratios) -> np.ndarray:
        ratios = np.atleast_2d(np.asarray(ratios, dtype=float))
        return self.c + self.k * np.exp(ratios[:, :-1] @ np.asarray(self.t))


def fit_mixing_law(ratios, loss) -> MixingLaw:
    """Variable projection as in eval/scaling.fit_exp_law: for fixed t, (c, k) is linear least squares;
    t is searched by least squares from a grid of starts."""
    ratios, loss = np.atleast_2d(np.asarray(ratios, dtype=float)), np.asarray(loss, dtype=float)
    free = ratios[:, :-1]
    distinct = len({tuple(row) for row in np.round(ratios, 9)})
    if distinct < free.shape[1] + 2:
        raise ValueError(f"Data Mixing Law: need >= {free.shape[1] + 2} distinct mixtures, got {distinct}")

    def linear(t):
        design = np.stack([np.ones(len(loss)), np.exp(free @ t)], axis=1)
        coef, *_ = np.linalg.lstsq(design, loss, rcond=None)
        return coef, design @ coef - loss

    best, best_cost = None, np.inf
    for start in itertools.product((-4.0, -1.0, 1.0, 4.0), repeat=free.shape[1]):
        result = least_squares(lambda t: linear(t)[1], np.array(start), bounds=(-30, 30))
        if result.cost < best_cost:
            best, best_cost = result.x, result.cost
    (c, k), _ = linear(best)
    return MixingLaw(float(c), float(k), tuple(float(x) for x in best))


def choose_ratio(
    domain: DcptLaw, general: DcptLaw, n: float, d: float, tolerance: float, r_max: float
) -> dict:
    """The domain ratio in [0, r_max] with the lowest predicted domain loss whose predicted general loss is
    within `tolerance` (relative) of the general loss predicted at r = 0."""
    grid = np.linspace(0.0, r_max, 1001)
    domain_loss, general_loss = domain(n, d, grid), general(n, d, 1 - grid)
    limit = float(general(n, d, 1.0)) * (1 + tolerance)
    feasible = general_loss <= limit
    pick = int(np.argmin(np.where(feasible, domain_loss, np.inf))) if feasible.any() else 0
    return {
        "ratio": float(grid[pick]),
        "domain_loss": float(domain_loss[pick]),
        "general_loss": float(general_loss[pick]),
        "general_limit": limit,
        "feasible": bool(feasible.any()),
    }


def law_dict(law) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else float(v)) for k, v in asdict(law).items()}
