"""Law fits over an experiment's table, each checked against the runs held out of it (`fit: false`).

scaling: Chinchilla L(N, D) on the fit runs' final held-out loss (eval/scaling.py), with bootstrap
intervals and the compute-optimal split; the held-out runs get the fit's prediction beside their loss.
mixture: D-CPT law per domain on every in-loop evaluation of the fit runs (N, D = tokens so far, r), the
recommended ratio with a bootstrap over runs, and the Data Mixing Law on the final losses; again each
held-out run gets both laws' predictions.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from eval.mixture_laws import DcptLaw, MixingLaw, choose_ratio, fit_dcpt, fit_mixing_law, law_dict
from eval.scaling import ChinchillaFit, fit_with_intervals
from train.experiment.config import ExperimentConfig, MixtureFitConfig, ScalingFitConfig
from train.experiment.grid import RunSpec


def _check(observed: float, predicted: float) -> dict:
    return {
        "observed": float(observed),
        "predicted": float(predicted),
        "error": float(predicted - observed),
        "relative_error": float((predicted - observed) / observed),
    }


def fit_scaling(table: pd.DataFrame, cfg: ScalingFitConfig) -> dict:
    need = [cfg.params, "tokens", cfg.loss]
    missing = [c for c in need if c not in table.columns]
    if missing:
        return {"skipped": f"columns {missing} are not in the table"}
    fit_rows = table[table["fit"]].dropna(subset=need)
    try:
        result = fit_with_intervals(
            fit_rows[cfg.params].to_numpy(),
            fit_rows["tokens"].to_numpy(),
            fit_rows[cfg.loss].to_numpy(),
            cfg.budgets,
            cfg.bootstrap,
        )
    except ValueError as exc:
        return {"skipped": str(exc)}
    law = ChinchillaFit(**result["fit"])
    result["params_column"], result["loss_column"] = cfg.params, cfg.loss
    result["checks"] = [
        {"run_id": row["run_id"], "params": row[cfg.params], "tokens": row["tokens"]}
        | _check(row[cfg.loss], law.loss(row[cfg.params], row["tokens"]))
        for row in table[~table["fit"]].dropna(subset=need).to_dict("records")
    ]
    return result


def mixture_points(table: pd.DataFrame, curves: pd.DataFrame, cfg: MixtureFitConfig) -> pd.DataFrame:
    """One row per in-loop evaluation of a fit run: run_id, N, D, r, domain and general loss."""
    dom, gen = f"heldout_loss/{cfg.domain}", f"heldout_loss/{cfg.general}"
    ratio = f"ratio/{cfg.domain}"
    if ratio not in table.columns or curves.empty or dom not in curves.columns or gen not in curves.columns:
        return pd.DataFrame()
    runs = table[["run_id", "params_nonembed", ratio, "fit"]].rename(
        columns={"params_nonembed": "N", ratio: "r"}
    )
    points = curves.dropna(subset=[dom, gen]).merge(runs, on="run_id")
    points = points[points["tokens"] > 0]
    return points.rename(columns={"tokens": "D", dom: "domain_loss", gen: "general_loss"})[
        ["run_id", "fit", "step", "N", "D", "r", "domain_loss", "general_loss"]
    ]


def _fit_pair(points: pd.DataFrame, start: tuple[DcptLaw, DcptLaw] | None = None) -> tuple[DcptLaw, DcptLaw]:
    n, d, r = (points[c].to_numpy() for c in ("N", "D", "r"))
    domain_start, general_start = start or (None, None)
    return (
        fit_dcpt(n, d, r, points["domain_loss"], domain_start),
        fit_dcpt(n, d, 1 - r, points["general_loss"], general_start),
    )


def fit_mixture(table: pd.DataFrame, curves: pd.DataFrame, cfg: MixtureFitConfig, seed: int = 0) -> dict:
    points = mixture_points(table, curves, cfg)
    if points.empty:
        return {"skipped": f"no runs with ratio/{cfg.domain} and in-loop held-out losses per channel"}
    fit_points = points[points["fit"]]
    try:
        domain, general = _fit_pair(fit_points)
    except ValueError as exc:
        return {"skipped": str(exc)}
    final = table[table["fit"]]
    target_n, target_d = float(final["params_nonembed"].max()), float(final["tokens"].max())
    r_max = float(fit_points["r"].max())
    choice = choose_ratio(domain, general, target_n, target_d, cfg.tolerance, r_max)
    rng = np.random.default_rng(seed)
    run_ids = fit_points["run_id"].unique()
    boot = []
    for _ in range(cfg.bootstrap):
        pick = rng.choice(run_ids, len(run_ids))
        sample = pd.concat([fit_points[fit_points["run_id"] == rid] for rid in pick])
        try:
            pair = _fit_pair(sample, (domain, general))
        except ValueError:
            continue
        boot.append(choose_ratio(*pair, target_n, target_d, cfg.tolerance, r_max)["ratio"])
    result = {
        "domain": cfg.domain,
        "general": cfg.general,
        "tolerance": cfg.tolerance,
        "points": len(fit_points),
        "runs": len(run_ids),
        "target": {"N": target_n, "D": target_d},
        "dcpt": {"domain": law_dict(domain), "general": law_dict(general)},
        "recommended": choice,
        "ratio_interval": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))] if boot else [],
        "bootstrap": len(boot),
    }
    result.update(_mixing_law(table, cfg))
    result["checks"] = _mixture_checks(table, domain, general, result, cfg)
    return result


def _ratio_columns(table: pd.DataFrame, cfg: MixtureFitConfig) -> list[str]:
    """The mixture's channels with the domain first (the Data Mixing Law drops the last from its exponent)."""
    used = (
        table.loc[table["fit"]].fillna(0).filter(like="ratio/").sum() > 0
    )  # channels some fit run trains on
    others = sorted(c for c in used[used].index if c != f"ratio/{cfg.domain}")
    return [f"ratio/{cfg.domain}", *others]


def _mixing_law(table: pd.DataFrame, cfg: MixtureFitConfig) -> dict:
    columns = _ratio_columns(table, cfg)
    fit_rows = table[table["fit"]]
    laws = {}
    for channel in (cfg.domain, cfg.general):
        loss = f"heldout_loss/{channel}"
        rows = fit_rows.dropna(subset=[loss])
        try:
            laws[channel] = law_dict(
                fit_mixing_law(rows[columns].fillna(0).to_numpy(), rows[loss].to_numpy())
            )
        except ValueError as exc:
            laws[channel] = {"skipped": str(exc)}
    return {"mixing_law": {"ratio_columns": columns, "laws": laws}}


def _mixture_checks(
    table, domain: DcptLaw, general: DcptLaw, result: dict, cfg: MixtureFitConfig
) -> list[dict]:
    columns = result["mixing_law"]["ratio_columns"]
    laws = result["mixing_law"]["laws"]
    checks = []
    for values in table[~table["fit"]].to_dict("records"):
        n, d, r = values["params_nonembed"], values["tokens"], values[f"ratio/{cfg.domain}"]
        mix = np.array([[values.get(c, 0.0) or 0.0 for c in columns]])
        for channel, law, share in ((cfg.domain, domain, r), (cfg.general, general, 1 - r)):
            observed = values.get(f"heldout_loss/{channel}")
            if observed is None or np.isnan(observed):
                continue
            check = {"run_id": values["run_id"], "channel": channel, "ratio": r}
            check["dcpt"] = _check(observed, law(n, d, share))
            if "skipped" not in laws[channel]:
                mixing = MixingLaw(laws[channel]["c"], laws[channel]["k"], tuple(laws[channel]["t"]))
                check["mixing_law"] = _check(observed, mixing(mix)[0])
            checks.append(check)
    return checks


def recommended_runs(cfg: ExperimentConfig, runs: list[RunSpec], mixture: dict) -> list[RunSpec]:
    """With fits.mixture.verify: one run per seed at the recommended ratio (to 0.01), held out of the fit.
    Each copies a fit run's config with the domain and general shares replaced; labels name the ratio."""
    if not cfg.fits.mixture.verify or "recommended" not in mixture:
        return []
    m = cfg.fits.mixture
    ratio = round(mixture["recommended"]["ratio"], 2)
    fitted = {
        round(r.train.data.channel_weights.get(m.domain, 0) / sum(r.train.data.channel_weights.values()), 2)
        for r in runs
        if r.fit
    }
    if ratio in fitted:  # the fit's own runs at that ratio would be trained again, bit for bit
        mixture["verification"] = (
            f"none: the recommended ratio {ratio} is a fitted ratio (a tighter tolerance moves it)"
        )
        return []
    label = f"rec{m.domain}{round(ratio * 100):02d}"
    template_per_seed: dict[int, RunSpec] = {}
    for run in runs:
        if run.fit and m.domain in run.train.data.channel_weights:
            template_per_seed.setdefault(run.train.train.seed, run)
    verify = []
    for _, template in sorted(template_per_seed.items()):
        weights = dict(template.train.data.channel_weights) | {
            m.domain: ratio,
            m.general: round(1 - ratio, 2),
        }
        labels = {name: value if name.endswith("seed") else label for name, value in template.labels.items()}
        run_id = "_".join(labels.values())
        directory = template.directory.parent / run_id
        train = template.train.model_copy(
            update={
                "data": template.train.data.model_copy(update={"channel_weights": weights}),
                "run_dir": str(directory / "train"),
            }
        )
        verify.append(
            replace(template, run_id=run_id, labels=labels, fit=False, train=train, directory=directory)
        )
    return verify
