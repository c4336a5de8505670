"""End to end: `python -m eval` on a Hugging Face directory and on a trainer run (benchmarks and haystacks
from the bundled eval/data), held-out data from token shards, run-record fits without a model, config
errors, inputs checked before any model is loaded, and the trainer's in-loop hook."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from test_eval_support import sample_docs_text, single_thread, tiny_hf_dir, tiny_trainer_run
from typer.testing import CliRunner

from eval.__main__ import app
from eval.config import CONFIG_DIR, PACKAGED_DATA, EvalConfig
from eval.heldout import load_heldout
from eval.hook import InLoopEval
from eval.models import load_scorer
from eval.perplexity import evaluate_perplexity

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
QUICK_CONFIG = CONFIG_DIR / "eval" / "quick.yaml"
DEFAULT_CONFIG = CONFIG_DIR / "eval" / "default.yaml"
QUICK = [
    "--set",
    "torch_threads=1",
    "--set",
    "data.max_docs_per_domain=2",
    "--set",
    "data.max_chars_per_doc=1500",
    "--set",
    "needle.lengths=[128]",
    "--set",
    "needle.depths=[0.0,1.0]",
    "--set",
    "needle.trials=1",
    "--set",
    "multiple_choice.limit=4",
    "--set",
    "multiple_choice.tasks=[arc_easy,piqa]",
]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    threads = single_thread()
    yield tmp_path_factory.getbasetemp()
    torch.set_num_threads(threads)


def _invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def test_cli_on_a_hugging_face_directory_writes_results_and_report(base, corpus, tmp_path):
    hf = tiny_hf_dir(base, corpus)
    out = tmp_path / "out"
    result = _invoke([str(QUICK_CONFIG), "--checkpoint", str(hf), "--output", str(out), *QUICK])
    assert "report.html" in result.output
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["backend"] == "hf" and results["model"]["params"] > 0
    assert results["config"]["data_dir"] == str(PACKAGED_DATA)  # everything read ships with the project
    assert set(results["perplexity"]["domains"]) == {"wikitext-2_valid", "cmrc2018_zhwiki_contexts"}
    assert results["probes"]["capital_zh"]["kind"] == "continuation"
    assert {c["lang"] for c in results["needle"]["cells"]} == {"en", "zh"}
    assert set(results["multiple_choice"]) == {"arc_easy", "piqa"}
    assert results["perplexity"]["caps"]["max_chars_per_doc"] == 1500  # an explicit cap is reported
    assert results["perplexity"]["caps"]["docs_cut"] >= 1
    assert results["perplexity"]["window"] == 512 and results["perplexity"]["model_max_length"] == 1024
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert results["samples"] == "samples.jsonl"
    mc = [row for row in samples if row["part"] == "multiple_choice"]
    assert [(row["task"], row["doc_id"]) for row in mc] == [
        (t, i) for t in ("arc_easy", "piqa") for i in range(4)
    ]
    assert {"context", "choices", "loglikelihoods", "is_greedy", "pred", "gold", "acc", "acc_norm"} <= set(
        mc[0]
    )
    docs = [row for row in samples if row["part"] == "perplexity"]
    assert len(docs) == sum(row["docs"] for row in results["perplexity"]["domains"].values())
    assert sum(row["nll"] for row in docs) == pytest.approx(results["perplexity"]["overall"]["nll"])
    assert results["skipped"] == {
        "scaling": "no scaling.records given",
        "mixture": "no mixture.records given",
    }
    report = (out / "report.html").read_text()
    for png in ("perplexity.png", "probes_trend.png", "needle_heatmap.png"):
        assert (out / png).stat().st_size > 5000 and f'src="{png}"' in report


def test_cli_on_a_trainer_run_with_shards_as_heldout(base, corpus, tmp_path):
    from dataengine.pack.shards import ShardWriter

    run = tiny_trainer_run(base, corpus)
    scorer = load_scorer(run, device="cpu")
    shards = tmp_path / "shards"
    shards.mkdir()
    shutil.copy(run / "tokenizer" / "tokenizer.json", shards / "tokenizer.json")
    docs = sample_docs_text(corpus)[:4]
    eos = scorer.tokenizer.eos_token_id
    seq_len = 96
    writer = ShardWriter(
        shards,
        "heldout",
        seq_len,
        "uint16",
        vocab_size=len(scorer.tokenizer),
        pad_id=eos,
        eos_id=eos,
        tokenizer_sha256="test",
    )
    for i, (channel, text) in enumerate(docs):  # each document spread over rows, as the packer does
        ids = scorer.encode(text) + [eos]
        for start in range(0, len(ids), seq_len + 1):
            piece = ids[start : start + seq_len + 1]
            row = np.full(seq_len + 1, eos)
            row[: len(piece)] = piece
            span = {
                "start": 0,
                "end": len(piece),
                "doc_id": f"d{i}",
                "channel": channel,
                "lang": channel[-2:],
                "source": "test",
            }
            writer.write_row(row, [span])
    writer.close()

    cfg = EvalConfig(data={"heldout": [str(shards)]})
    loaded = load_heldout([shards], cfg.data)
    assert [(d.domain, d.text) for d in loaded] == [(c, t) for c, t in docs]  # pieces joined, text restored

    out = tmp_path / "out"
    _invoke(
        [
            str(QUICK_CONFIG),
            "--checkpoint",
            str(run),
            "--output",
            str(out),
            *QUICK,
            "--set",
            f"data.heldout=[{shards}]",
            "--set",
            "needle.enabled=false",
            "--set",
            "multiple_choice.enabled=false",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["backend"] == "trainer" and results["model"]["step"] == 7
    assert set(results["perplexity"]["domains"]) == {"wiki_en", "wiki_zh"}
    assert results["skipped"]["needle"] == "disabled in the config"
    history = [json.loads(x) for x in (out / "probe_history.jsonl").read_text().splitlines()]
    assert history[0]["step"] == 7


def test_cli_fits_run_records_without_a_model(tmp_path):
    n, d = (x.ravel() for x in np.meshgrid(np.logspace(7, 9, 4), np.logspace(9, 11, 3)))
    loss = 1.7 + 400 / n**0.34 + 410 / d**0.28
    records = tmp_path / "runs.jsonl"
    records.write_text(
        "".join(
            json.dumps({"params": a, "tokens": b, "loss": c}) + "\n"
            for a, b, c in zip(n, d, loss, strict=True)
        )
    )
    mixture = tmp_path / "mix.jsonl"
    rows = [
        {"ratio": r, "domain_loss": 2 + np.exp(-3 * r), "general_loss": 2.5 + 0.1 * np.exp(2 * r)}
        for r in (0.0, 0.2, 0.4, 0.6, 0.8)
    ]
    mixture.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    _invoke(
        [
            str(DEFAULT_CONFIG),
            "--output",
            str(out),
            "--set",
            f"scaling.records={records}",
            "--set",
            "scaling.bootstrap=20",
            "--set",
            f"mixture.records={mixture}",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    assert results["scaling"]["fit"]["alpha"] == pytest.approx(0.34, abs=0.01)
    assert 0 < results["mixture"]["ratio"] < 0.8
    assert results["skipped"]["perplexity"] == "no --checkpoint given"
    assert (out / "scaling.png").is_file() and (out / "mixture.png").is_file()


def test_config_errors_name_the_key(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            str(DEFAULT_CONFIG),
            "--output",
            str(tmp_path),
            "--set",
            "needle.depths=[2.0]",
        ],
    )
    assert result.exit_code == 2 and "needle" in result.output and "[0, 1]" in result.output


def test_in_loop_hook_on_the_live_trainer_model(base, corpus):
    from train.export import load_model

    run = tiny_trainer_run(base, corpus)
    model, _ = load_model(run)
    model.train()
    cfg = EvalConfig(
        data={
            "heldout": ["{data_dir}/zh/cmrc2018_zhwiki_contexts.jsonl"],
            "max_docs_per_domain": 3,
        }
    )
    hook = InLoopEval(cfg, run / "tokenizer", max_length=model.cfg.max_seq_len)
    metrics = hook(model, step=7)
    assert model.training  # the hook restores the training mode
    assert {"eval/bpb", "eval/ppl", "eval/bpb/cmrc2018_zhwiki_contexts", "probe/capital_zh"} <= set(metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    expected = evaluate_perplexity(load_scorer(run, device="cpu"), hook.docs, None, 512, 1024)
    assert metrics["eval/bpb"] == pytest.approx(expected["overall"]["bpb"], rel=1e-5)
