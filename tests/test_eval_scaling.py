"""Scaling-law fits: recovery of known parameters from synthetic runs, the compute-optimal split, and the
domain-mixture law of continued pretraining."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from eval.scaling import (
    ChinchillaFit,
    choose_mixture,
    fit_exp_law,
    fit_with_intervals,
    plot_chinchilla,
    plot_mixture,
    read_records,
)

TRUE = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al. (2022)


def synthetic_runs(noise: float, seed: int):
    """A 6 x 6 grid of model sizes and token counts with multiplicative log-normal noise on the loss."""
    n, d = (x.ravel() for x in np.meshgrid(np.logspace(7, 9.5, 6), np.logspace(9, 11.5, 6)))
    loss = ChinchillaFit(**TRUE).loss(n, d) * np.exp(np.random.default_rng(seed).normal(0, noise, n.size))
    return n, d, loss


def test_fit_recovers_known_parameters_within_bootstrap_intervals(tmp_path):
    n, d, loss = synthetic_runs(noise=0.005, seed=1)
    result = fit_with_intervals(n, d, loss, budgets=[1e21], bootstrap=100, seed=0)
    for name, true in TRUE.items():
        low, high = result["intervals"][name]
        assert low <= true <= high, (name, true, low, high)
        assert low <= result["fit"][name] <= high
    assert result["fit"]["alpha"] == pytest.approx(TRUE["alpha"], abs=0.03)
    assert result["fit"]["E"] == pytest.approx(TRUE["E"], abs=0.05)
    png = plot_chinchilla(n, d, loss, result, tmp_path / "scaling.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_compute_optimal_split_minimises_loss_on_the_budget():
    fit = ChinchillaFit(**TRUE)
    budget = 5.76e23  # Chinchilla's budget
    n_opt, d_opt = fit.compute_optimal(budget)
    assert 6 * n_opt * d_opt == pytest.approx(budget)
    numeric = minimize_scalar(
        lambda log_n: fit.loss(np.exp(log_n), budget / (6 * np.exp(log_n))),
        bounds=(np.log(1e8), np.log(1e12)),
        method="bounded",
        options={"xatol": 1e-9},
    )
    assert n_opt == pytest.approx(np.exp(numeric.x), rel=1e-3)
    assert 1e10 < n_opt < 1e11  # tens of billions of parameters, as the paper's approach 3 found


def test_mixture_law_recovers_its_curves_and_respects_the_tolerance(tmp_path):
    ratio = np.array([0.0, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9])
    domain_true = 2.0 + 1.5 * np.exp(-4.0 * ratio)  # domain loss falls with more domain data
    general_true = 2.4 + 0.05 * np.exp(3.0 * ratio)  # general loss rises as replay data shrinks
    noise = np.random.default_rng(0).normal(0, 0.002, (2, ratio.size))
    law = fit_exp_law(ratio, domain_true + noise[0])
    assert (law.c, law.k, law.t) == pytest.approx((2.0, 1.5, -4.0), rel=0.05)
    result = choose_mixture(ratio, domain_true + noise[0], general_true + noise[1], tolerance=0.02)
    limit = (2.4 + 0.05) * 1.02  # general loss allowed: +2% over the r = 0 value
    best = np.log((limit - 2.4) / 0.05) / 3.0  # where the true general curve reaches the limit
    assert result["feasible"] and result["ratio"] == pytest.approx(best, abs=0.02)
    assert result["general_loss"] <= result["general_limit"] + 1e-9
    png = plot_mixture(ratio, domain_true, general_true, result, tmp_path / "mixture.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_records_with_a_bad_value_name_the_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(
        json.dumps({"params": 1e8, "tokens": 2e9, "loss": 3.1})
        + "\n"
        + json.dumps({"params": 1e8, "tokens": "many", "loss": 3.0})
        + "\n"
    )
    with pytest.raises(ValueError, match=r"runs\.jsonl:2: field 'tokens' must be a number"):
        read_records(path, ("params", "tokens", "loss"))
    with pytest.raises(ValueError, match="at least 6 run records"):
        fit_with_intervals(np.array([1e8]), np.array([1e9]), np.array([3.0]), budgets=[1e20])
