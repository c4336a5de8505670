"""DIR/report.html: the results.json of one evaluation as tables plus its PNGs, self-contained beside them."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return html.escape(str(value))


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _image(results: dict, key: str) -> str:
    name = results.get("plots", {}).get(key)
    return f'<p><img src="{html.escape(name)}" alt="{key}"></p>' if name else ""


def _perplexity(results: dict) -> str:
    pp = results["perplexity"]
    rows = [{"domain": name, **row} for name, row in pp["domains"].items()]
    rows.append({"domain": "all", **pp["overall"]})
    lang_rows = [{"language": name, **row} for name, row in pp["languages"].items()]
    columns = [
        "docs",
        "tokens",
        "words",
        "bytes",
        "ppl",
        "bpb",
        "word_perplexity",
        "byte_perplexity",
        "bits_per_token",
    ]
    return (
        f"<p>Whole documents in rolling windows of {pp['window']} tokens (the model's context: "
        f"{_fmt(pp.get('model_max_length'))}), stride {pp['stride']}. {_caps(pp.get('caps') or {})}</p>"
        + table(rows, ["domain", *columns])
        + table(lang_rows, ["language", *columns])
        + _image(results, "perplexity")
    )


def _caps(caps: dict) -> str:
    """What the explicit held-out caps left out, so a capped number is never read as the whole set's."""
    parts = []
    if caps.get("max_docs_per_domain") is not None:
        left = sum(caps.get("docs_left_out", {}).values())
        parts.append(f"at most {caps['max_docs_per_domain']} documents a domain ({left} left out)")
    if caps.get("max_chars_per_doc") is not None:
        parts.append(
            f"documents cut to {caps['max_chars_per_doc']} characters ({caps.get('docs_cut', 0)} cut, "
            f"{caps.get('chars_cut', 0)} characters not scored)"
        )
    return ("Caps: " + "; ".join(parts) + ".") if parts else "No caps: every document whole."


def _probes(results: dict) -> str:
    rows = [{"probe": name, **row} for name, row in results["probes"].items()]
    columns = ["probe", "kind", "lang", "value", "logprob", "rank", "share", "ppl_good", "ppl_bad", "correct"]
    return table(rows, columns) + _image(results, "probes_trend")


def _needle(results: dict) -> str:
    nd = results["needle"]
    summary = (
        f"<p>Exact match {_fmt(nd['exact_match'])}, answer ranked first {_fmt(nd['top1'])} "
        f"(chance {_fmt(nd['chance_top1'])} with {nd['distractors']} distractors).</p>"
    )
    columns = [
        "lang",
        "length",
        "depth",
        "trials",
        "exact_match",
        "top1",
        "mean_rank",
        "answer_logprob",
        "skipped",
    ]
    return summary + _image(results, "needle") + table(nd["cells"], columns)


def _multiple_choice(results: dict) -> str:
    rows = [{"task": name, **row} for name, row in results["multiple_choice"].items()]
    return table(rows, ["task", "n", "limit", "acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "chance"])


def _scaling(results: dict) -> str:
    sc = results["scaling"]
    params = [{"parameter": k, "fit": v, "interval": sc["intervals"][k]} for k, v in sc["fit"].items()]
    return (
        f"<p>L(N, D) = E + A/N^α + B/D^β from {sc['records']} runs; {int(sc['level'] * 100)}% bootstrap "
        f"intervals ({sc['bootstrap']} resamples).</p>"
        + table(params, ["parameter", "fit", "interval"])
        + table(
            sc["compute_optimal"],
            ["budget", "params", "params_interval", "tokens", "tokens_interval", "tokens_per_param", "loss"],
        )
        + _image(results, "scaling")
    )


def _mixture(results: dict) -> str:
    mx = results["mixture"]
    return (
        f"<p>Chosen domain ratio <b>{_fmt(mx['ratio'])}</b>: predicted domain loss {_fmt(mx['domain_loss'])}, "
        f"general loss {_fmt(mx['general_loss'])} (limit {_fmt(mx['general_limit'])}, tolerance "
        f"{_fmt(mx['tolerance'])}, feasible: {_fmt(mx['feasible'])}; {mx['runs']} runs).</p>"
        + _image(results, "mixture")
    )


SECTIONS = (
    ("perplexity", "Perplexity and bits-per-byte", _perplexity),
    ("probes", "Probes", _probes),
    ("needle", "Needle / passkey retrieval", _needle),
    ("multiple_choice", "Multiple choice (log-likelihood, zero-shot)", _multiple_choice),
    ("scaling", "Scaling law", _scaling),
    ("mixture", "Domain-mixture law", _mixture),
)

STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:0.8em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}"
    "th{background:#f3f3f3}img{max-width:100%}"
)


def write_report(results: dict, path: Path) -> Path:
    model = results.get("model", {})
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>eval report</title><style>{STYLE}</style></head>",
        "<body><h1>Evaluation report</h1>",
        f"<p>Checkpoint: <code>{_fmt(results.get('checkpoint'))}</code> — backend {_fmt(model.get('backend'))}, "
        f"step {_fmt(model.get('step'))}, parameters {_fmt(model.get('params'))}, "
        f"context {_fmt(model.get('max_length'))}.</p>",
    ]
    for key, title, render in SECTIONS:
        if key in results:
            parts.append(f"<h2>{title}</h2>{render(results)}")
    if results.get("skipped"):
        rows = [{"part": k, "reason": v} for k, v in results["skipped"].items()]
        parts.append("<h2>Skipped</h2>" + table(rows, ["part", "reason"]))
    timings = [{"part": k, "seconds": v} for k, v in results.get("timings_s", {}).items()]
    parts.append("<h2>Timings</h2>" + table(timings, ["part", "seconds"]) + "</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
