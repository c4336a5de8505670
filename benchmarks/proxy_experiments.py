"""The proxy-experiment recipes (configs/experiments/) as Markdown tables for RESULTS.md.

    python benchmarks/proxy_experiments.py [--recipes raw_vs_processed order cpt_ratio scaling]

Each recipe runs through `python -m train.experiment`'s code (finished runs are skipped, so after the
recipes have run this only reads their tables). Prints, per recipe: bits per byte on the held-out
documents per language and overall (median [min, max] over seeds) per variant, the ratio of each variant's
median to the first variant's, and the law fits with their checks on held-out runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from train.experiment.__main__ import run_experiment
from train.experiment.report import summarise

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["raw_vs_processed", "order", "cpt_ratio", "scaling"]


def _cell(stat: dict | None) -> str:
    return "" if stat is None else f"{stat['median']:.4f} [{stat['min']:.4f}, {stat['max']:.4f}]"


def variant_table(result: dict) -> str:
    rows = summarise(result["table"], result["axes"])
    metrics = sorted({k for row in rows for k in row if k.startswith("bpb/lang=")}) + ["bpb", "heldout_loss"]
    head = ["variant", "runs", *[m.replace("bpb/lang=", "bpb ") for m in metrics], "bpb vs first"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    first = rows[0].get("bpb", {}).get("median")
    for row in rows:
        ratio = row.get("bpb", {}).get("median", float("nan")) / first if first else float("nan")
        cells = [row["variant"], str(row["runs"]), *[_cell(row.get(m)) for m in metrics], f"{ratio:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit_lines(result: dict) -> str:
    out = []
    for name, fit in result["fits"].items():
        if "skipped" in fit:
            out.append(f"- {name}: skipped ({fit['skipped']})")
            continue
        if name == "mixture":
            rec, interval = fit["recommended"], fit["ratio_interval"]
            out.append(
                f"- mixture (D-CPT, {fit['points']} points from {fit['runs']} runs): recommended {fit['domain']} "
                f"ratio {rec['ratio']:.3f} (95% bootstrap {interval[0]:.3f}-{interval[1]:.3f}), predicted "
                f"{fit['domain']} loss {rec['domain_loss']:.4f}, {fit['general']} loss {rec['general_loss']:.4f} "
                f"(limit {rec['general_limit']:.4f})"
            )
            for check in fit["checks"]:
                laws = ", ".join(
                    f"{law} {check[law]['predicted']:.4f} ({check[law]['relative_error']:+.2%})"
                    for law in ("dcpt", "mixing_law")
                    if law in check
                )
                out.append(
                    f"  - held-out {check['run_id']} ({check['channel']}, r={check['ratio']:.2f}): "
                    f"observed {check['dcpt']['observed']:.4f}; predicted {laws}"
                )
        if name == "scaling":
            f = fit["fit"]
            out.append(
                f"- scaling (Chinchilla on {fit['records']} runs, N = {fit['params_column']}): E={f['E']:.3f} "
                f"A={f['A']:.3g} alpha={f['alpha']:.3f} B={f['B']:.3g} beta={f['beta']:.3f}"
            )
            for check in fit["checks"]:
                out.append(
                    f"  - held-out {check['run_id']} (N={check['params']:.3g}, D={check['tokens']:.3g}): observed "
                    f"{check['observed']:.4f}, predicted {check['predicted']:.4f} ({check['relative_error']:+.2%})"
                )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=RECIPES, choices=RECIPES)
    args = parser.parse_args()
    for name in args.recipes:
        start = time.perf_counter()
        result = run_experiment(ROOT / "configs/experiments" / f"{name}.yaml", log=lambda _: None)
        table = result["table"]
        print(f"\n### {name}\n")
        print(
            f"runs: {len(table)}, run time summed over runs {table['train_s'].sum() + table['eval_s'].sum():.0f} s "
            f"(this call {time.perf_counter() - start:.0f} s)\n"
        )
        print(variant_table(result))
        print()
        print(fit_lines(result))


if __name__ == "__main__":
    main()
