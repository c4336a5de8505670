"""Mixture laws (eval/mixture_laws.py) and the experiment's fits (train/experiment/fits.py): a law that
generated the points is recovered, and the fits' checks compare predictions with held-out runs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval.mixture_laws import DcptLaw, MixingLaw, choose_ratio, fit_dcpt, fit_mixing_law
from eval.scaling import ChinchillaFit
from train.experiment.config import MixtureFitConfig, ScalingFitConfig
from train.experiment.fits import fit_mixture, fit_scaling

DOMAIN = DcptLaw(E=1.8, A=0.0, alpha=0.0, B=40.0, eta=0.3, beta=0.35, C=0.25, gamma=0.4)
GENERAL = DcptLaw(E=2.2, A=0.0, alpha=0.0, B=30.0, eta=0.2, beta=0.3, C=0.05, gamma=0.6)


def _grid(rng, noise: float):
    ratios, tokens = np.array([0.1, 0.3, 0.6]), np.array([2e5, 4e5, 6e5, 8e5])
    r, d = (a.ravel() for a in np.meshgrid(ratios, tokens))
    n = np.full_like(r, 1e5)
    jitter = 1 + noise * rng.standard_normal(len(r))
    return n, d, r, DOMAIN(n, d, r) * jitter, GENERAL(n, d, 1 - r) * jitter


def test_dcpt_fit_recovers_the_law_that_made_the_points():
    n, d, r, domain, _ = _grid(np.random.default_rng(0), 0.0)
    law = fit_dcpt(n, d, r, domain)
    probe_r, probe_d = np.array([0.2, 0.45, 0.5]), np.array([3e5, 7e5, 8e5])  # inside the fitted range
    np.testing.assert_allclose(law(1e5, probe_d, probe_r), DOMAIN(1e5, probe_d, probe_r), rtol=2e-3)
    assert law.A == 0  # one model size: the size term folds into E


def test_dcpt_fit_with_sizes_uses_the_size_term():
    rng = np.random.default_rng(1)
    truth = DcptLaw(E=1.5, A=30.0, alpha=0.4, B=40.0, eta=0.3, beta=0.35, C=0.25, gamma=0.4)
    n = rng.choice([1e5, 3e5, 1e6], 40)
    d, r = rng.uniform(2e5, 1e6, 40), rng.uniform(0.05, 0.7, 40)
    law = fit_dcpt(n, d, r, truth(n, d, r))
    assert law.A > 0
    np.testing.assert_allclose(law(5e5, 5e5, 0.4), truth(5e5, 5e5, 0.4), rtol=5e-3)


def test_mixing_law_recovers_two_and_three_domain_laws():
    two = MixingLaw(c=2.0, k=1.5, t=(-2.5,))
    mix = np.array([[r, 1 - r] for r in (0.0, 0.2, 0.5, 0.8)])
    fit = fit_mixing_law(mix, two(mix))
    np.testing.assert_allclose(fit([[0.35, 0.65]]), two([[0.35, 0.65]]), rtol=1e-6)
    three = MixingLaw(c=1.0, k=2.0, t=(-1.5, 0.7))
    rng = np.random.default_rng(2)
    mix3 = rng.dirichlet([1, 1, 1], 12)
    fit3 = fit_mixing_law(mix3, three(mix3))
    np.testing.assert_allclose(fit3(mix3), three(mix3), rtol=1e-5)
    with pytest.raises(ValueError, match="need >= 3 distinct mixtures"):
        fit_mixing_law(mix[:2], two(mix[:2]))


def test_chosen_ratio_keeps_general_loss_within_the_bound():
    choice = choose_ratio(DOMAIN, GENERAL, 1e5, 8e5, tolerance=0.01, r_max=0.6)
    grid = np.linspace(0, 0.6, 1001)
    general = GENERAL(1e5, 8e5, 1 - grid)
    allowed = general <= GENERAL(1e5, 8e5, 1.0) * 1.01
    assert choice["feasible"] and choice["general_loss"] <= choice["general_limit"] + 1e-12
    assert choice["ratio"] == pytest.approx(grid[allowed][np.argmin(DOMAIN(1e5, 8e5, grid[allowed]))])
    loose = choose_ratio(DOMAIN, GENERAL, 1e5, 8e5, tolerance=1.0, r_max=0.6)
    assert loose["ratio"] >= choice["ratio"]  # a looser bound never picks less of the domain


def _mixture_tables(rng):
    rows, curves = [], []
    for ratio, fit in ((0.1, True), (0.3, True), (0.6, True), (0.45, False)):
        for seed in range(3):
            run_id = f"r{int(ratio * 100)}_{seed}"
            noise = 1 + 0.002 * rng.standard_normal()
            for step, tokens in ((1, 2e5), (2, 4e5), (3, 6e5), (4, 8e5)):
                curves.append(
                    {
                        "run_id": run_id,
                        "step": step,
                        "tokens": tokens,
                        "heldout_loss/zh": float(DOMAIN(1e5, tokens, ratio)) * noise,
                        "heldout_loss/en": float(GENERAL(1e5, tokens, 1 - ratio)) * noise,
                    }
                )
            last = curves[-1]
            rows.append(
                {
                    "run_id": run_id,
                    "fit": fit,
                    "params_nonembed": 1e5,
                    "tokens": 8e5,
                    "ratio/zh": ratio,
                    "ratio/en": 1 - ratio,
                    "heldout_loss/zh": last["heldout_loss/zh"],
                    "heldout_loss/en": last["heldout_loss/en"],
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(curves)


def test_fit_mixture_predicts_the_held_out_ratio():
    table, curves = _mixture_tables(np.random.default_rng(3))
    result = fit_mixture(table, curves, MixtureFitConfig(domain="zh", general="en", bootstrap=20))
    assert result["points"] == 36 and result["runs"] == 9 and result["bootstrap"] == 20
    low, high = result["ratio_interval"]
    assert low <= result["recommended"]["ratio"] <= high
    assert {c["run_id"] for c in result["checks"]} == {"r45_0", "r45_1", "r45_2"}
    for check in result["checks"]:
        assert abs(check["dcpt"]["relative_error"]) < 0.01  # noise is 0.2%
        assert abs(check["mixing_law"]["relative_error"]) < 0.01


def test_fit_scaling_checks_the_held_out_larger_size():
    truth = ChinchillaFit(E=1.7, A=400.0, B=900.0, alpha=0.34, beta=0.28)
    rows = []
    for params, fit in ((2e4, True), (5e4, True), (1e5, True), (3e5, False)):
        for tokens in (2e5, 4e5, 8e5):
            rows.append(
                {
                    "run_id": f"{params:g}_{tokens:g}",
                    "fit": fit,
                    "params_nonembed": params,
                    "tokens": tokens,
                    "heldout_loss": float(truth.loss(params, tokens)),
                }
            )
    result = fit_scaling(pd.DataFrame(rows), ScalingFitConfig(bootstrap=10))
    assert len(result["checks"]) == 3
    assert all(abs(c["relative_error"]) < 0.01 for c in result["checks"])
