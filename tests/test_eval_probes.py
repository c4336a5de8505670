"""Probes from YAML (the shipped English/Chinese set), their numbers against direct computations,
history across checkpoints and the trend plot."""

from __future__ import annotations

import math

import pytest
import torch
from test_eval_support import single_thread, tiny_hf_dir

from eval.config import CONFIG_DIR
from eval.models import load_scorer
from eval.probes import (
    ContrastProbe,
    load_probes,
    plot_trend,
    read_history,
    run_probe,
    run_probes,
    update_history,
)

DEFAULT_PROBES = CONFIG_DIR / "eval" / "probes.yaml"


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, corpus):
    threads = single_thread()
    yield load_scorer(tiny_hf_dir(tmp_path_factory.getbasetemp(), corpus), device="cpu")
    torch.set_num_threads(threads)


def test_default_probe_set_covers_both_languages_and_all_kinds():
    probes = load_probes([DEFAULT_PROBES])
    assert {p.lang for p in probes} == {"en", "zh"}
    assert {p.kind for p in probes} == {"continuation", "perplexity", "contrast", "format"}
    names = {p.name for p in probes}
    assert {"capital_zh", "sky_color_zh", "decimal_compare", "json_zh"} <= names


def test_probe_values_match_direct_computations(scorer):
    probes = {p.name: p for p in load_probes([DEFAULT_PROBES])}
    results = run_probes(scorer, list(probes.values()))
    assert set(results) == set(probes)
    assert all(math.isfinite(r["value"]) for r in results.values())

    capital = results["capital_zh"]  # P('北京' | '中国的首都是') and its rank among 上海/广州/南京
    [direct] = scorer.score_continuations([("中国的首都是", "北京")])
    assert capital["value"] == pytest.approx(math.exp(direct.logprob))
    others = scorer.score_continuations([("中国的首都是", o) for o in ("上海", "广州", "南京")])
    assert capital["rank"] == 1 + sum(o.logprob > direct.logprob for o in others)
    assert 0 < capital["share"] < 1

    decimal = results["decimal_compare"]  # PPL('9.9>9.11') vs PPL('9.9<9.11')
    good, bad = scorer.sequence_logprob(["9.9>9.11", "9.9<9.11"])
    ppl_good = math.exp(-good.logprobs.mean())
    ppl_bad = math.exp(-bad.logprobs.mean())
    assert decimal["ppl_good"] == pytest.approx(ppl_good) and decimal["ppl_bad"] == pytest.approx(ppl_bad)
    assert decimal["value"] == pytest.approx(math.log(ppl_bad) - math.log(ppl_good))
    assert decimal["correct"] == (ppl_bad > ppl_good)

    fmt = results["json_zh"]  # P('{' | '以 json 输出') summed over accepted openings
    assert fmt["value"] == pytest.approx(sum(fmt["per_option"]))
    assert 0 < fmt["value"] < 1


def test_identical_sentences_have_zero_margin(scorer):
    probe = ContrastProbe(name="same", kind="contrast", good="天空是蓝色的。", bad="天空是蓝色的。")
    assert run_probe(scorer, probe)["value"] == pytest.approx(0.0, abs=1e-9)


def test_history_tracks_checkpoints_and_plots_a_trend(scorer, tmp_path):
    probes = load_probes([DEFAULT_PROBES])[:4]
    values = run_probes(scorer, probes)
    history_path = tmp_path / "probe_history.jsonl"
    for step, scale in ((200, 0.5), (100, 1.0), (300, 0.25)):
        scaled = {k: {**v, "value": v["value"] * scale} for k, v in values.items()}
        update_history(history_path, f"ckpt-{step}", step, scaled)
    update_history(history_path, "ckpt-100", 100, values)  # re-evaluating a checkpoint replaces it
    history = read_history(history_path)
    assert [h["step"] for h in history] == [100, 200, 300]
    png = plot_trend(history, {p.name: p.kind for p in probes}, tmp_path / "trend.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_bad_probe_file_names_file_and_key(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text("probes:\n  - {name: x, kind: continuation, prompt: hi}\n", encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"probes\.yaml: probes\.0\.continuation.*continuation: Field required"
    ):
        load_probes([path])
    path.write_text(
        "probes:\n  - {name: a, kind: perplexity, text: t}\n  - {name: a, kind: perplexity, text: u}\n"
    )
    with pytest.raises(ValueError, match=r"duplicate probe names \['a'\]"):
        load_probes([path])
