"""Scaling-law fits from run records.

1. Chinchilla form L(N, D) = E + A / N^alpha + B / D^beta, fitted as Hoffmann et al. (2022, approach 3):
   Huber loss (delta 1e-3) between the predicted and observed log-loss, parameters (log A, log B, log E,
   alpha, beta), L-BFGS from the best points of a grid of starts; bootstrap over records gives percentile
   confidence intervals. With C ~ 6 N D the compute-optimal split has a closed form.
2. Domain-mixture law for continued pretraining: loss(r) = c + k * exp(t * r) for the domain ratio r
   (the two-domain case of the data-mixing law of Ye et al., 2024), fitted to domain and general loss
   of runs at several ratios; the chosen ratio minimises predicted domain loss while the predicted general
   loss stays within a relative tolerance of its value at r = 0.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from dataengine.io.paths import is_file, read_bytes

HUBER_DELTA = 1e-3
PARAM_NAMES = ("E", "A", "B", "alpha", "beta")
DEFAULT_GRID = {
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
}


@dataclass(frozen=True)
class ChinchillaFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def loss(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    def compute_optimal(self, budget: float) -> tuple[float, float]:
        """(N, D) minimising L subject to 6 N D = budget."""
        a, b = self.alpha, self.beta
        g = (a * self.A / (b * self.B)) ** (1 / (a + b))
        return g * (budget / 6) ** (b / (a + b)), (budget / 6) ** (a / (a + b)) / g

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in PARAM_NAMES}


def _objective(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray
) -> tuple[float, np.ndarray]:
    """Summed Huber loss of log-loss residuals and its gradient in theta = (a, b, e, alpha, beta).

    Divided by delta^2 so values and gradients are O(1): unscaled, L-BFGS's gradient tolerance stops it
    before it moves (the raw objective is ~1e-6 per point). Plain numpy: this runs thousands of times."""
    a, b, e, alpha, beta = theta
    term_n, term_d = a - alpha * log_n, b - beta * log_d
    top = np.maximum(np.maximum(term_n, term_d), e)
    exp_n, exp_d, exp_e = np.exp(term_n - top), np.exp(term_d - top), np.exp(e - top)
    total = exp_n + exp_d + exp_e
    residual = top + np.log(total) - log_l
    size = np.abs(residual)
    small = size <= HUBER_DELTA
    value = np.where(small, 0.5 * residual**2, HUBER_DELTA * (size - 0.5 * HUBER_DELTA)).sum()
    slope = np.where(small, residual, HUBER_DELTA * np.sign(residual)) / (HUBER_DELTA**2 * total)
    w_n, w_d = exp_n * slope, exp_d * slope
    grad = np.array([w_n.sum(), w_d.sum(), (exp_e * slope).sum(), -(w_n @ log_n), -(w_d @ log_d)])
    return float(value) / HUBER_DELTA**2, grad


def _grid_starts(log_n, log_d, log_l, grid: dict, keep: int) -> list[np.ndarray]:
    """The `keep` grid points with the lowest objective (evaluating a grid is cheap, optimising is not)."""
    starts = np.array(list(itertools.product(grid["a"], grid["b"], grid["e"], grid["alpha"], grid["beta"])))
    a, b, e, alpha, beta = (starts[:, i : i + 1] for i in range(5))
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.broadcast_to(e, (len(starts), len(log_n)))])
    residual = logsumexp(terms, axis=0) - log_l
    huber = np.where(
        np.abs(residual) <= HUBER_DELTA,
        0.5 * residual**2,
        HUBER_DELTA * (np.abs(residual) - 0.5 * HUBER_DELTA),
    ).sum(axis=1)
    return list(starts[np.argsort(huber)[:keep]])


def _optimise(starts: list[np.ndarray], log_n, log_d, log_l) -> np.ndarray:
    """L-BFGS from each start, best result. One BLAS thread: on a 5-parameter problem a threaded BLAS
    only spins (measured 60x slower per L-BFGS step on a busy 2-core machine)."""
    best, best_value = None, np.inf
    with threadpool_limits(limits=1, user_api="blas"):
        for start in starts:
            result = minimize(_objective, start, args=(log_n, log_d, log_l), jac=True, method="L-BFGS-B")
            if result.fun < best_value:
                best, best_value = result.x, result.fun
    return best


def _to_fit(theta: np.ndarray) -> ChinchillaFit:
    a, b, e, alpha, beta = theta
    return ChinchillaFit(
        E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)), alpha=float(alpha), beta=float(beta)
    )


def fit_chinchilla(
    n: np.ndarray, d: np.ndarray, loss: np.ndarray, grid: dict | None = None, starts: int = 8
) -> tuple[ChinchillaFit, np.ndarray]:
    """Best fit and its raw parameter vector (a, b, e, alpha, beta)."""
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    theta = _optimise(_grid_starts(log_n, log_d, log_l, grid or DEFAULT_GRID, starts), log_n, log_d, log_l)
    return _to_fit(theta), theta


def fit_with_intervals(
    n: np.ndarray,
    d: np.ndarray,
    loss: np.ndarray,
    budgets: list[float],
    bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Fit, bootstrap percentile intervals for the parameters and the compute-optimal N, D per budget."""
    n, d, loss = (np.asarray(x, dtype=float) for x in (n, d, loss))
    if len(n) < 6:
        raise ValueError(f"scaling: need at least 6 run records for 5 parameters, got {len(n)}")
    fit, theta = fit_chinchilla(n, d, loss)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(n), len(n))
        log_n, log_d, log_l = np.log(n[pick]), np.log(d[pick]), np.log(loss[pick])
        samples.append(_to_fit(_optimise([theta], log_n, log_d, log_l)))
    tail = (1 - level) / 2 * 100

    def interval(values: list[float]) -> list[float]:
        return (
            [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))] if values else []
        )

    result = {
        "records": len(n),
        "fit": fit.as_dict(),
        "intervals": {name: interval([getattr(s, name) for s in samples]) for name in PARAM_NAMES},
        "level": level,
        "bootstrap": bootstrap,
        "compute_optimal": [],
    }
    for budget in budgets:
        n_opt, d_opt = fit.compute_optimal(budget)
        boot = [s.compute_optimal(budget) for s in samples]
        result["compute_optimal"].append(
            {
                "budget": budget,
                "params": n_opt,
                "tokens": d_opt,
                "tokens_per_param": d_opt / n_opt,
                "loss": float(fit.loss(n_opt, d_opt)),
                "params_interval": interval([x[0] for x in boot]),
                "tokens_interval": interval([x[1] for x in boot]),
            }
        )
    return result


def read_records(path: Path | str, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Columns `keys` from a JSONL file of run records (local or s3://...); a missing or non-numeric
    value names its line."""
    if not is_file(path):
        raise FileNotFoundError(f"run records file not found: {path}")
    columns: dict[str, list[float]] = {k: [] for k in keys}
    for line_no, line in enumerate(read_bytes(path).decode("utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        for key in keys:
            value = row.get(key)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ValueError(f"{path}:{line_no}: field {key!r} must be a number, got {value!r}")
            columns[key].append(float(value))
    return {k: np.array(v) for k, v in columns.items()}


def plot_chinchilla(n, d, loss, result: dict, path: Path) -> Path:
    """Left: fitted vs observed loss. Right: loss against compute with the compute-optimal frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fit = ChinchillaFit(**result["fit"])
    n, d, loss = (np.asarray(x, dtype=float) for x in (n, d, loss))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    predicted = fit.loss(n, d)
    left.scatter(loss, predicted, c=np.log10(n), cmap="viridis")
    bounds = [min(loss.min(), predicted.min()), max(loss.max(), predicted.max())]
    left.plot(bounds, bounds, color="grey", linewidth=0.8)
    left.set_xlabel("observed loss")
    left.set_ylabel("fitted loss")
    left.set_title(
        f"E={fit.E:.3f} A={fit.A:.3g} B={fit.B:.3g} α={fit.alpha:.3f} β={fit.beta:.3f}", fontsize=9
    )
    compute = 6 * n * d
    points = right.scatter(compute, loss, c=np.log10(n), cmap="viridis")
    fig.colorbar(points, ax=right, label="log10 N")
    grid = np.logspace(
        np.log10(compute.min()) - 0.5, np.log10(max(compute.max(), max(result_budgets(result)))), 100
    )
    frontier = [fit.loss(*fit.compute_optimal(c)) for c in grid]
    right.plot(grid, frontier, color="black", label="compute-optimal fit")
    right.axhline(fit.E, color="grey", linestyle="--", linewidth=0.8, label="E (irreducible)")
    right.set_xscale("log")
    right.set_xlabel("compute C = 6ND (FLOPs)")
    right.set_ylabel("loss")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def result_budgets(result: dict) -> list[float]:
    return [row["budget"] for row in result["compute_optimal"]] or [1.0]


# --- domain-mixture law for continued pretraining ---------------------------------------------------


@dataclass(frozen=True)
class ExpLaw:
    """loss(r) = c + k * exp(t * r)."""

    c: float
    k: float
    t: float

    def __call__(self, r: np.ndarray | float) -> np.ndarray:
        return self.c + self.k * np.exp(self.t * np.asarray(r, dtype=float))


def fit_exp_law(ratio: np.ndarray, loss: np.ndarray, t_bound: float = 30.0) -> ExpLaw:
    """Variable projection: for a fixed t the law is linear in (c, k), so only t is searched."""
    ratio, loss = np.asarray(ratio, dtype=float), np.asarray(loss, dtype=float)
    if len(np.unique(ratio)) < 3:
        raise ValueError(f"mixture: need runs at >= 3 distinct ratios, got {sorted(set(ratio.tolist()))}")

    def linear(t: float) -> tuple[float, float, float]:
        design = np.stack([np.ones_like(ratio), np.exp(t * ratio)], axis=1)
        (c, k), *_ = np.linalg.lstsq(design, loss, rcond=None)
        return float(c), float(k), float(((design @ [c, k] - loss) ** 2).sum())

    ts = np.linspace(-t_bound, t_bound, 241)
    t0 = ts[int(np.argmin([linear(t)[2] for t in ts]))]
    step = ts[1] - ts[0]
    t = minimize_scalar(lambda t: linear(t)[2], bounds=(t0 - step, t0 + step), method="bounded").x
    c, k, _ = linear(float(t))
    return ExpLaw(c, k, float(t))


def choose_mixture(ratio, domain_loss, general_loss, tolerance: float) -> dict:
    """The ratio in [0, max observed] with the lowest predicted domain loss whose predicted general loss
    is at most (1 + tolerance) x the predicted general loss at r = 0."""
    domain, general = fit_exp_law(ratio, domain_loss), fit_exp_law(ratio, general_loss)
    grid = np.linspace(0.0, float(np.max(ratio)), 1001)
    limit = float(general(0.0)) * (1 + tolerance)
    feasible = general(grid) <= limit
    pick = int(np.argmin(np.where(feasible, domain(grid), np.inf))) if feasible.any() else 0
    return {
        "runs": len(ratio),
        "domain_law": domain.__dict__,
        "general_law": general.__dict__,
        "tolerance": tolerance,
        "general_limit": limit,
        "ratio": float(grid[pick]),
        "domain_loss": float(domain(grid[pick])),
        "general_loss": float(general(grid[pick])),
        "feasible": bool(feasible.any()),
    }


def plot_mixture(ratio, domain_loss, general_loss, result: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domain, general = ExpLaw(**result["domain_law"]), ExpLaw(**result["general_law"])
    grid = np.linspace(0.0, float(np.max(ratio)), 200)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.scatter(ratio, domain_loss, color="tab:blue", label="domain loss (runs)")
    ax.plot(grid, domain(grid), color="tab:blue")
    ax.scatter(ratio, general_loss, color="tab:orange", label="general loss (runs)")
    ax.plot(grid, general(grid), color="tab:orange")
    ax.axhline(result["general_limit"], color="tab:orange", linestyle=":", label="general-loss limit")
    ax.axvline(result["ratio"], color="black", linestyle="--", label=f"chosen ratio {result['ratio']:.3f}")
    ax.set_xlabel("domain ratio in the continued-pretraining mix")
    ax.set_ylabel("loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
