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


DPI = 110


def _png(fig) -> bytes:
    """Lay out and save at one dpi, so savefig reuses the text sizes tight_layout measured (at the
    default 100 dpi it measured every label twice); zlib level 1: a third less time, slightly larger
    files."""
    buf = io.BytesIO()
    fig.set_dpi(DPI)
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return buf.getvalue()


def funnel_chart(run: dict) -> bytes:
    """Documents and MB alive after each step of both phases (the dedup step last when it ran)."""
    steps = list(run["funnel_docs"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    colors = ["#264653" if s == "dedup" else KEPT for s in steps]
    ax1.bar(steps, [run["funnel_docs"][s] for s in steps], color=colors)
    ax1.set_title("documents alive after each step")
    ax2.bar(steps, [run["funnel_bytes"].get(s, 0) / 1e6 for s in steps], color=colors)
    ax2.set_title("MB of text alive after each step")
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=40)
        plt.setp(ax.get_xticklabels(), ha="right", rotation_mode="anchor")
    return _png(fig)


def reasons_chart(run: dict) -> bytes:
    """Log scale: reasons differ by orders of magnitude, and a linear axis hides all but the largest."""
    reasons = sorted(run["rejected_by_reason"].items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(8, max(2.0, 0.32 * len(reasons) + 1)))
    if not reasons:
        return _empty(fig, ax, "nothing rejected")
    bars = ax.barh([r for r, _ in reasons], [n for _, n in reasons], color=REJECTED)
    ax.set_xscale("log")
    ax.set_xlim(0.8, max(n for _, n in reasons) * 3)
    ax.bar_label(bars, labels=[str(n) for _, n in reasons], padding=3, fontsize=8)
    ax.set_title("rejected documents by reason (stage:rule), log scale")
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


def _empty(fig, ax, message: str) -> bytes:
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center")
    return _png(fig)


def categories_chart(run: dict) -> bytes:
    """The kept set's category mix in documents and in tokens (words + CJK characters)."""
    groups = {k: g["kept"] for k, g in run.get("by_category", {}).items() if g["kept"]}
    tokens = run.get("category_tokens", {})
    fig, ax = plt.subplots(figsize=(9, 3.6))
    if not groups:
        return _empty(fig, ax, "no kept documents with a category")
    names = sorted(groups, key=lambda k: -tokens.get(k, 0))
    docs_total, tokens_total = sum(groups.values()), max(1, sum(tokens.values()))
    x = range(len(names))
    ax.bar(
        [i - 0.2 for i in x],
        [100 * groups[k] / docs_total for k in names],
        0.4,
        color=KEPT,
        label="documents",
    )
    ax.bar(
        [i + 0.2 for i in x],
        [100 * tokens.get(k, 0) / tokens_total for k in names],
        0.4,
        color="#264653",
        label="tokens",
    )
    ax.set_xticks(list(x), names, rotation=30)
    ax.set_ylabel("% of kept")
    ax.set_title("category mix of the kept documents")
    ax.legend()
    return _png(fig)


def quality_chart(run: dict, top: int = 8) -> bytes:
    """Kept documents per quality bin (0-19, the scorer's percentile buckets), per language and category."""
    series: dict[str, list[int]] = {}
    for key, n in run.get("quality_bins", {}).items():
        lang, category, b = key.rsplit("|", 2)
        series.setdefault(f"{lang} / {category}", [0] * 20)[int(b)] += n
    fig, ax = plt.subplots(figsize=(9, 3.6))
    if not series:
        return _empty(fig, ax, "no quality scores (stages.quality off, or no model for these languages)")
    for name in sorted(series, key=lambda k: -sum(series[k]))[:top]:
        ax.plot(range(20), series[name], marker="o", markersize=3, label=f"{name} ({sum(series[name])})")
    ax.set_xticks(range(0, 20, 2))
    ax.set_xlabel("quality bin (5-percentile buckets of the scorer's reference crawl)")
    ax.set_ylabel("kept documents")
    ax.set_title("quality per language and category")
    ax.legend(fontsize=8)
    return _png(fig)


CHARTS = {
    "funnel": funnel_chart,
    "reasons": reasons_chart,
    "languages": languages_chart,
    "lengths": lengths_chart,
    "categories": categories_chart,
    "quality": quality_chart,
    "timing": timing_chart,
}


def _table(rows: list[tuple]) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{cells}</table>"


def percent(part: int, whole: int) -> str:
    """A share as a person reads it: whole percents, one decimal where rounding would say 0% or 100%."""
    if not whole:
        return "n/a"
    p = 100 * part / whole
    text = f"{p:.0f}%"
    if text in ("0%", "100%") and 0 < part < whole:
        text = f"{p:.1f}%"
    return text


def headline(name: str, group: dict) -> str:
    """One line per group: 'zh: 10% kept — top reason c4:too_few_sentences (85% of its rejections)'."""
    line = f"{name}: {percent(group['kept'], group['input'])} kept of {group['input']}"
    reasons = group.get("reasons") or {}
    if not reasons:
        return f"{line} — nothing rejected"
    top, n = next(iter(reasons.items()))
    return f"{line} — top reason {top} ({percent(n, group['rejected'])} of its rejections)"


def _top_reasons(group: dict, k: int = 3) -> str:
    items = list((group.get("reasons") or {}).items())[:k]
    return "; ".join(f"{r} {n} ({percent(n, group['rejected'])})" for r, n in items) or "–"


def _common_dir(paths: list[str]) -> str:
    """The folder all these paths (or URIs) share, ending in "/" ('' if none), to show them shorter."""
    dirs = [posixpath.dirname(p) + "/" for p in paths if p != "unknown"]
    prefix = posixpath.commonprefix(dirs) if dirs else ""
    prefix = prefix[: prefix.rfind("/") + 1]
    return prefix if len(prefix) > 1 else ""


def breakdown_table(groups: dict, label: str, limit: int = 50, prefix: str = "") -> str:
    """Groups (run.json's by_language or by_source, largest input first) as an HTML table."""
    head = (
        f"<tr><th>{html.escape(label)}</th><th>input</th><th>kept</th><th>rejected</th>"
        "<th>keep rate</th><th>top reasons (share of rejections)</th></tr>"
    )
    rows = []
    for name, g in list(groups.items())[:limit]:
        rate = 100 * g["kept"] / g["input"] if g["input"] else 0
        shown = name[len(prefix) :] if prefix and name.startswith(prefix) else name
        rows.append(
            f"<tr><td>{html.escape(shown)}</td><td>{g['input']}</td><td>{g['kept']}</td>"
            f'<td>{g["rejected"]}</td><td style="background:linear-gradient(90deg,{KEPT}66 {rate:.1f}%,'
            f'transparent {rate:.1f}%)">{percent(g["kept"], g["input"])}</td>'
            f"<td>{html.escape(_top_reasons(g))}</td></tr>"
        )
    more = len(groups) - limit
    note = f"<p>… and {more} more in run.json</p>" if more > 0 else ""
    return f'<table class="groups">{head}{"".join(rows)}</table>{note}'


def breakdown_sections(run: dict) -> str:
    """Headlines and tables per language and per source file ('' for a run.json written before them)."""
    by_lang, by_source = run.get("by_language"), run.get("by_source")
    if not by_lang and not by_source and not run.get("by_category"):
        return ""
    parts = []
    if by_lang:
        lines = "".join(
            f"<li><b>{html.escape(k)}</b>{html.escape(headline(k, g)[len(k) :])}</li>"
            for k, g in list(by_lang.items())[:15]
        )
        parts.append(f'<h2>keep rate by language</h2><ul class="headlines">{lines}</ul>')
        parts.append(breakdown_table(by_lang, "language"))
        parts.append(
            "<p class=note>language = detected language (<code>code</code> for source code, "
            "<code>unknown</code> for rows rejected before language ID, e.g. io:*).</p>"
        )
    if by_source:
        prefix = _common_dir(list(by_source))
        where = f" (under {html.escape(prefix)})" if prefix else ""
        parts.append(f"<h2>keep rate by source file{where}</h2>")
        parts.append(breakdown_table(by_source, "source file", prefix=prefix))
    by_category = run.get("by_category")
    if by_category and set(by_category) != {"unknown"}:
        parts.append("<h2>keep rate by category</h2>")
        parts.append(breakdown_table(by_category, "category"))
        if "dedup" in run:
            parts.append(
                "<p class=note>The category mix in tokens and the quality chart count phase 1's kept rows "
                "(before dedup); the table above counts dedup's rejections too.</p>"
            )
    if "dedup" in run:
        parts.append(
            "<p class=note>dedup:* rejections count in the language and source file of the copy that was "
            "rejected (its own <code>lang</code> and <code>source</code>).</p>"
        )
    return "".join(parts)


def semantic_section(run: dict) -> str:
    """What semantic dedup (SemDeDup) removed per language, with the epsilon used and the nearest-neighbour
    cosines inside the clusters ('' when it did not run)."""
    sem = (run.get("dedup") or {}).get("semantic") or run.get("semantic")
    if not sem:
        return ""
    report = sem.get("report") or {}
    head = (
        "<tr><th>language</th><th>documents clustered</th><th>removed</th><th>kept</th><th>epsilon</th>"
        "<th>NN cosine p50 / p90 / p99</th></tr>"
    )
    rows = []
    for lang, g in sorted(sem.get("by_language", {}).items(), key=lambda kv: -kv[1]["documents"]):
        q = (report.get(lang) or {}).get("nn_cosine_quantiles") or {}
        nn = " / ".join(str(q.get(k, "–")) for k in ("p50", "p90", "p99"))
        kept = g["documents"] - g["removed"]
        rows.append(
            f"<tr><td>{html.escape(lang)}</td><td>{g['documents']}</td><td>{g['removed']}</td>"
            f"<td>{percent(kept, g['documents'])}</td><td>{g['epsilon']}</td><td>{nn}</td></tr>"
        )
    return (
        f"<h2>semantic dedup</h2><p>{sem.get('removed', 0)} of {sem.get('documents', 0)} documents removed "
        f"(dedup:semantic) in {sem.get('clusters', 0)} clusters; a document goes when its cosine to an "
        "earlier one of its cluster exceeds 1 - epsilon.</p>"
        f'<table class="groups">{head}{"".join(rows)}</table>'
        "<p class=note>NN cosine: each document's highest cosine to another of its cluster. "
        "run.json's <code>dedup.semantic.report</code> lists, per language, what other epsilons would "
        "remove.</p>"
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} m {secs} s ({seconds:.1f} s)" if minutes else f"{seconds:.1f} s"


def summary_rows(run: dict) -> list[tuple[str, str]]:
    """The headline table: final counts and bytes (after dedup when it ran), phase 1's beside them, and
    the wall time of the whole run."""
    inp = run["input"] or 1
    timings = run["timings"]
    rows = [
        ("input documents", str(run["input"])),
        ("kept", f"{run['kept']} ({100 * run['kept'] / inp:.1f}%)"),
        ("rejected", f"{run['rejected']} ({100 * run['rejected'] / inp:.1f}%)"),
        ("input MB", f"{run['input_bytes'] / 1e6:.2f}"),
        ("kept MB", f"{run['kept_bytes'] / 1e6:.2f}"),
    ]
    phase1 = run.get("phase1")
    if phase1 is not None:
        p1_bytes = phase1.get("kept_bytes", run.get("funnel_bytes", {}).get("dedup"))
        kept = f"{phase1['kept']} documents" + (f", {p1_bytes / 1e6:.2f} MB" if p1_bytes is not None else "")
        rows.insert(3, ("kept by phase 1 (before dedup)", kept))
    wall = _duration(timings["wall_s"])
    steps = (("phase 1", "phase1_s"), ("dedup", "dedup_s"))
    shown = [f"{name} {_duration(timings[key])}" for name, key in steps if key in timings]
    if shown:
        wall += " — " + ", ".join(shown)
    rows.append(("wall time (whole run)", wall))
    rows.append(("units", f"{run['units']['total']} ({run['units']['resumed_from_previous_run']} resumed)"))
    return rows


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
    summary = _table(summary_rows(run))
    reasons = _table(sorted(run["rejected_by_reason"].items(), key=lambda kv: -kv[1]))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>dataengine run report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td{{padding:2px 10px;border-bottom:1px solid #ddd}}
img{{max-width:100%}}th{{text-align:left;padding:2px 10px;border-bottom:2px solid #999}}
table.groups td:nth-child(n+2):nth-child(-n+5){{text-align:right}}.note{{color:#555;font-size:90%}}
ul.headlines{{font-size:110%}}</style></head><body>
<h1>dataengine run report</h1><p>{html.escape(output)}</p>
{summary}{breakdown_sections(run)}{semantic_section(run)}<h2>rejections</h2>{reasons}
{"".join(images)}
</body></html>"""
    path = f"{root}/report.html"
    with fs.open_output_stream(path) as fh:
        fh.write(page.encode())
    return path if "://" not in output else posixpath.join(output, "report.html")
