"""Needle / passkey retrieval on real haystacks: exact context construction, a copy model as the positive
control (retrieves every key), a random model as the negative one, and the heatmap."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_eval_support import CopyModel, single_thread, tiny_hf_dir

from eval.config import EvalConfig, NeedleConfig
from eval.models import load_scorer, module_scorer
from eval.needle import TEMPLATES, build_context, draw_keys, evaluate_needle, plot_heatmap, read_haystack


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, corpus):
    threads = single_thread()
    yield load_scorer(tiny_hf_dir(tmp_path_factory.getbasetemp(), corpus), device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def haystacks() -> dict[str, str]:
    """The default haystacks: the bundled WikiText-2 and zh-Wikipedia text under the default data_dir."""
    cfg = EvalConfig()
    return {
        lang: read_haystack([cfg.resolve_data(p) for p in paths])
        for lang, paths in cfg.needle.haystack.items()
    }


def test_haystacks_are_real_english_and_chinese_text(haystacks):
    assert "Homarus gammarus" in haystacks["en"][:2000]
    assert sum("\u4e00" <= ch <= "\u9fff" for ch in haystacks["zh"][:5000]) > 2500


@pytest.mark.parametrize("depth", [0.0, 0.3, 1.0])
def test_context_has_exact_length_and_needle_at_depth(scorer, haystacks, depth):
    hay = scorer.encode(haystacks["en"])
    template = TEMPLATES["en"]
    context = build_context(scorer, hay, template, "48151", 300, depth, offset=1000)
    assert len(context) == 300
    needle = scorer.encode(template.needle.format(key="48151"))
    starts = [i for i in range(len(context)) if context[i : i + len(needle)] == needle]
    assert len(starts) == 1
    hay_len = 300 - len(scorer.start_ids) - len(needle) - len(scorer.encode(template.question))
    assert starts[0] == len(scorer.start_ids) + round(depth * hay_len)
    assert scorer.decode(context).endswith(template.question)
    assert (
        build_context(scorer, hay, template, "48151", 10, depth, offset=0) is None
    )  # no room for the needle


def test_keys_are_distinct_and_have_the_requested_digits():
    key, others = draw_keys(np.random.default_rng(0), 2, 89)
    assert len({key, *others}) == 90 and all(len(k) == 2 for k in [key, *others])


def test_copy_model_retrieves_every_key(scorer, haystacks):
    copier = module_scorer(
        CopyModel(len(scorer.tokenizer)), scorer.tokenizer, 1024, torch.device("cpu"), "copy", "test"
    )
    cfg = NeedleConfig(lengths=[128, 256], depths=[0.0, 0.5, 1.0], trials=2, distractors=3)
    result = evaluate_needle(copier, haystacks, cfg)
    assert len(result["cells"]) == 12
    assert result["exact_match"] == 1.0 and result["top1"] == 1.0
    assert all(c["mean_rank"] == 1.0 for c in result["cells"])


def test_random_model_grid_and_heatmap(scorer, haystacks, tmp_path):
    cfg = NeedleConfig(lengths=[128, 256, 2048], depths=[0.0, 1.0], trials=2, distractors=4)
    result = evaluate_needle(scorer, haystacks, cfg)
    skipped = [c for c in result["cells"] if "skipped" in c]
    assert {c["length"] for c in skipped} == {2048}  # beyond the tiny model's 1024 positions
    scored = [c for c in result["cells"] if "skipped" not in c]
    assert len(scored) == 8 and all(1 <= c["mean_rank"] <= 5 for c in scored)
    assert result["exact_match"] == 0.0  # an untrained model does not produce a 5-digit key
    assert result["chance_top1"] == pytest.approx(0.2)
    png = plot_heatmap(result, tmp_path / "needle.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
