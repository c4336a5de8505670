"""summary.json and report.html of an experiment: per-variant medians with seed spread, loss curves, bpb per
domain, the mixture surface, the scaling fit, and every fit's prediction checked against held-out runs."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from eval.mixture_laws import DcptLaw
from eval.scaling import plot_chinchilla

METRIC_PREFIXES = ("bpb", "heldout_loss", "train_loss", "hellaswag/", "arc_", "piqa/", "mmlu/")


def variant_axes(table: pd.DataFrame, axes: list[str]) -> list[str]:
    """The axes that make a variant: all but those whose labels only vary the seed."""
    return [a for a in axes if a in table.columns and not a.endswith("seed")]


def metric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith(METRIC_PREFIXES)]


def summarise(table: pd.DataFrame, axes: list[str]) -> list[dict]:
    """Per variant and metric: median, min, max and the number of seeds."""
    by = variant_axes(table, axes)
    groups = table.groupby(by, sort=False) if by else [((), table)]
    rows = []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        row = {"variant": "/".join(map(str, key)) or "all", "runs": len(group)}
        for metric in metric_columns(table):
            values = group[metric].dropna().to_numpy(dtype=float)
            if len(values):
                row[metric] = {
                    "median": float(np.median(values)),
                    "min": float(values.min()),
                    "max": float(values.max()),
                    "seeds": len(values),
                }
        rows.append(row)
    return rows


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _plt().close(fig)
    return path


def _variant_of(table: pd.DataFrame, axes: list[str]) -> dict[str, str]:
    by = variant_axes(table, axes)
    return {r["run_id"]: "/".join(str(r[a]) for a in by) or "all" for r in table.to_dict("records")}


def plot_curves(table: pd.DataFrame, curves: pd.DataFrame, axes: list[str], path: Path) -> Path | None:
    if curves.empty or "loss" not in curves.columns:
        return None
    plt = _plt()
    variants = _variant_of(table, axes)
    names = sorted(set(variants.values()))
    colors = {name: plt.cm.tab10(i % 10) for i, name in enumerate(names)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    for run_id, run in curves.groupby("run_id"):
        variant = variants.get(run_id, "?")
        train = run.dropna(subset=["loss"])
        left.plot(train["step"], train["loss"], color=colors.get(variant), alpha=0.6, linewidth=0.9)
        if "heldout_loss" in run.columns:
            held = run.dropna(subset=["heldout_loss"])
            right.plot(held["step"], held["heldout_loss"], color=colors.get(variant), alpha=0.6, marker=".")
    for name in names:
        left.plot([], [], color=colors[name], label=name)
    left.legend(fontsize=8)
    left.set(xlabel="step", ylabel="training loss (nats/token)", title="training loss, one line per run")
    right.set(xlabel="step", ylabel="held-out loss (nats/token)", title="in-loop held-out loss")
    return _save(fig, path)


def plot_bpb(table: pd.DataFrame, axes: list[str], path: Path) -> Path | None:
    columns = [c for c in table.columns if c.startswith("bpb/lang=")] or (["bpb"] if "bpb" in table else [])
    if not columns:
        return None
    plt = _plt()
    variants = _variant_of(table, axes)
    names = sorted(set(variants.values()))
    table = table.assign(variant=table["run_id"].map(variants))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(columns) * len(names) / 2), 4.2))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        group = table[table["variant"] == name]
        med = [np.median(group[c].dropna()) for c in columns]
        low = [m - group[c].min() for m, c in zip(med, columns, strict=True)]
        high = [group[c].max() - m for m, c in zip(med, columns, strict=True)]
        x = np.arange(len(columns)) + i * width
        ax.bar(x, med, width, yerr=[low, high], capsize=3, label=f"{name} (n={len(group)})")
    ax.set_xticks(np.arange(len(columns)) + 0.4 - width / 2, [c.replace("bpb/lang=", "") for c in columns])
    ax.set_ylabel("held-out bits per byte (median, min-max over seeds)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_mixture_surface(table: pd.DataFrame, fit: dict, path: Path) -> Path | None:
    if "dcpt" not in fit:
        return None
    plt = _plt()
    ratio = f"ratio/{fit['domain']}"
    n, d = fit["target"]["N"], fit["target"]["D"]
    grid = np.linspace(0, 1, 200)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for channel, share, color in (
        (fit["domain"], grid, "tab:blue"),
        (fit["general"], 1 - grid, "tab:orange"),
    ):
        column = f"heldout_loss/{channel}"
        law = DcptLaw(**fit["dcpt"]["domain" if channel == fit["domain"] else "general"])
        for held_out, marker in ((False, "o"), (True, "x")):
            rows = table[table["fit"] != held_out]
            label = f"{channel} loss ({'held-out runs' if held_out else 'fit runs'})"
            ax.scatter(rows[ratio], rows[column], color=color, marker=marker, label=label)
        ax.plot(grid, law(n, d, share), color=color, label=f"{channel}: D-CPT fit at D={d:.3g}")
    rec = fit["recommended"]
    ax.axvline(rec["ratio"], color="black", linestyle="--", label=f"recommended r={rec['ratio']:.2f}")
    if fit.get("ratio_interval"):
        ax.axvspan(*fit["ratio_interval"], color="grey", alpha=0.15, label="95% bootstrap interval")
    ax.axhline(rec["general_limit"], color="tab:orange", linestyle=":", label="general-loss limit")
    ax.set(xlabel=f"share of {fit['domain']} in the mix (r)", ylabel="held-out loss (nats/token)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _table_html(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, dict) and "median" in value:
        return f"{value['median']:.4f} [{value['min']:.4f}, {value['max']:.4f}] n={value['seeds']}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_report(out: Path, table: pd.DataFrame, curves: pd.DataFrame, axes: list[str], fits: dict) -> Path:
    summary = summarise(table, axes)
    (out / "summary.json").write_text(json.dumps({"variants": summary, "fits": fits}, indent=1) + "\n")
    plots = {
        "loss curves": plot_curves(table, curves, axes, out / "curves.png"),
        "held-out bits per byte per language": plot_bpb(table, axes, out / "bpb.png"),
    }
    scaling = fits.get("scaling", {})
    if "fit" in scaling:
        fit_rows = table[table["fit"]]
        plots["scaling fit"] = plot_chinchilla(
            fit_rows[scaling["params_column"]],
            fit_rows["tokens"],
            fit_rows[scaling["loss_column"]],
            scaling,
            out / "scaling.png",
        )
    if "dcpt" in fits.get("mixture", {}):
        plots["mixture vs loss"] = plot_mixture_surface(table, fits["mixture"], out / "mixture.png")
    metrics = metric_columns(table)
    parts = [
        "<html><head><meta charset='utf-8'><title>experiment</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px}</style></head><body>",
        f"<h1>Experiment: {html.escape(out.name)}</h1>",
        "<h2>Variants (median [min, max] over seeds)</h2>",
        _table_html(summary, ["variant", "runs", *metrics]),
    ]
    for title, path in plots.items():
        if path is not None:
            parts.append(f"<h2>{html.escape(title)}</h2><img src='{path.name}'>")
    for name, fit in fits.items():
        parts.append(f"<h2>Fit: {html.escape(name)}</h2><pre>{html.escape(json.dumps(fit, indent=1))}</pre>")
    parts.append("<h2>Runs</h2>" + _table_html(table.to_dict("records"), list(table.columns)))
    parts.append("</body></html>")
    (out / "report.html").write_text("\n".join(parts), encoding="utf-8")
    return out / "report.html"
