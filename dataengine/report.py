"""`dataengine report OUT`: run.json → OUT/report.html with PNG charts a person can read."""

from __future__ import annotations

import html
import io
import posixpath

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dataengine.io.writers import read_json, resolve  # noqa: E402

KEPT, REJECTED = "#2a9d8f", "#e76f51"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def funnel_chart(run: dict) -> bytes:
    steps = list(run["funnel_docs"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax1.bar(steps, [run["funnel_docs"][s] for s in steps], color=KEPT)
    ax1.set_title("documents alive after each step")
    ax2.bar(steps, [run["funnel_bytes"].get(s, 0) / 1e6 for s in steps], color="#264653")
    ax2.set_title("MB of text alive after each step")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=40)
    return _png(fig)


def reasons_chart(run: dict) -> bytes:
    reasons = sorted(run["rejected_by_reason"].items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.32 * len(reasons) + 1)))
    ax.barh([r for r, _ in reasons], [n for _, n in reasons], color=REJECTED)
    ax.set_title("rejected documents by reason (stage:rule)")
    return _png(fig)


def languages_chart(run: dict, top: int = 15) -> bytes:
    kept, rejected = run["langs_kept"], run["langs_rejected"]
    langs = sorted(set(kept) | set(rejected), key=lambda k: -(kept.get(k, 0) + rejected.get(k, 0)))[:top]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.bar(langs, [kept.get(k, 0) for k in langs], color=KEPT, label="kept")
    ax.bar(
        langs,
        [rejected.get(k, 0) for k in langs],
        bottom=[kept.get(k, 0) for k in langs],
        color=REJECTED,
        label="rejected",
    )
    ax.set_title(f"languages (top {top})")
    ax.legend()
    return _png(fig)


def lengths_chart(run: dict) -> bytes:
    kept = {int(k): v for k, v in run["length_hist_kept"].items()}
    rejected = {int(k): v for k, v in run["length_hist_rejected"].items()}
    bins = list(range(0, max([*kept, *rejected, 0]) + 1))
    labels = [f"<{2 ** (b + 1) - 1}" for b in bins]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    xs = range(len(bins))
    ax.bar([x - 0.2 for x in xs], [kept.get(b, 0) for b in bins], width=0.4, color=KEPT, label="kept")
    ax.bar(
        [x + 0.2 for x in xs], [rejected.get(b, 0) for b in bins], width=0.4, color=REJECTED, label="rejected"
    )
    ax.set_xticks(list(xs), labels, rotation=50, fontsize=7)
    ax.set_title("document length (characters, log2 bins)")
    ax.legend()
    return _png(fig)


def timing_chart(run: dict) -> bytes:
    seconds = run["stage_seconds"]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    ax.bar(list(seconds), list(seconds.values()), color="#e9c46a")
    ax.set_ylabel("CPU seconds (all workers)")
    ax.set_title("time per stage")
    ax.tick_params(axis="x", rotation=40)
    return _png(fig)


CHARTS = {
    "funnel": funnel_chart,
    "reasons": reasons_chart,
    "languages": languages_chart,
    "lengths": lengths_chart,
    "timing": timing_chart,
}


def _table(rows: list[tuple]) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{cells}</table>"


def write_report(output: str) -> str:
    """Write OUT/report.html and OUT/report/*.png from OUT/run.json; return the HTML path."""
    fs, root = resolve(output)
    run = read_json(fs, f"{root}/run.json")
    fs.create_dir(f"{root}/report", recursive=True)
    images = []
    for name, chart in CHARTS.items():
        with fs.open_output_stream(f"{root}/report/{name}.png") as fh:
            fh.write(chart(run))
        images.append(f'<h2>{name}</h2><img src="report/{name}.png" alt="{name}">')
    inp = run["input"] or 1
    summary = _table(
        [
            ("input documents", run["input"]),
            ("kept", f"{run['kept']} ({100 * run['kept'] / inp:.1f}%)"),
            ("rejected", f"{run['rejected']} ({100 * run['rejected'] / inp:.1f}%)"),
            ("input MB", f"{run['input_bytes'] / 1e6:.2f}"),
            ("kept MB", f"{run['kept_bytes'] / 1e6:.2f}"),
            ("wall seconds", run["timings"]["wall_s"]),
            ("units", f"{run['units']['total']} ({run['units']['resumed_from_previous_run']} resumed)"),
        ]
    )
    reasons = _table(sorted(run["rejected_by_reason"].items(), key=lambda kv: -kv[1]))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>dataengine run report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td{{padding:2px 10px;border-bottom:1px solid #ddd}}
img{{max-width:100%}}</style></head><body>
<h1>dataengine run report</h1><p>{html.escape(output)}</p>
{summary}<h2>rejections</h2>{reasons}
{"".join(images)}
</body></html>"""
    path = f"{root}/report.html"
    with fs.open_output_stream(path) as fh:
        fh.write(page.encode())
    return path if "://" not in output else posixpath.join(output, "report.html")
