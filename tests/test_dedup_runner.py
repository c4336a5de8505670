"""`dataengine dedup` end to end on real English and Chinese documents with planted duplicates.

One input set holds exact copies (re-cased, re-spaced), near-duplicates (1-3%
of words or characters deleted), a GSM8K question pasted into a web page, and
clean documents spread over two Parquet files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from dataengine.configio import CONFIG_DIR
from dataengine.dedup.cli import DEDUP_EPILOG, dedup_command
from dataengine.dedup.config import DedupConfig, IncrementalConfig
from dataengine.dedup.runner import run_dedup

pytestmark = pytest.mark.ray


def _near(text: str, rate: float, rng: random.Random, cjk: bool) -> str:
    units = list(text) if cjk else text.split(" ")
    return ("" if cjk else " ").join(u for u in units if rng.random() >= rate)


@pytest.fixture(scope="module")
def planted(corpus, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """Input folder and the expected reject reason of every planted document (bundled real text)."""
    rng = random.Random(7)
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        en = [t for t in (json.loads(line)["text"] for line in fh) if len(t) >= 700][:40]
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        zh = [json.loads(line)["text"] for line in fh][:30]
    with open(corpus / "eval" / "gsm8k_openai" / "test.jsonl", encoding="utf-8") as fh:
        question = json.loads(fh.readline())["question"]
    rows = [{"id": f"en{i}", "text": t, "lang": "en", "quality": 0.5} for i, t in enumerate(en)]
    rows += [{"id": f"zh{i}", "text": t, "lang": "zh", "quality": 0.5} for i, t in enumerate(zh)]
    expected: dict[str, str] = {}
    for i in range(5):
        rows.append({"id": f"en{i}-copy", "text": "  " + en[i].upper(), "lang": "en", "quality": 0.1})
        expected[f"en{i}-copy"] = "dedup:exact"
    for i in range(5, 12):
        rows.append(
            {"id": f"en{i}-near", "text": _near(en[i], 0.01, rng, False), "lang": "en", "quality": 0.1}
        )
        expected[f"en{i}-near"] = "dedup:minhash"
    for i in range(6):
        rows.append(
            {"id": f"zh{i}-near", "text": _near(zh[i], 0.01, rng, True), "lang": None, "quality": 0.1}
        )
        expected[f"zh{i}-near"] = "dedup:minhash"
    rows.append({"id": "contaminated", "text": en[30] + "\n" + question, "lang": "en", "quality": 0.9})
    expected["contaminated"] = "decontam:gsm8k_openai.test"
    rng.shuffle(rows)
    for i, row in enumerate(rows):
        row["source"] = f"planted.jsonl:{i}"
    folder = tmp_path_factory.mktemp("dedup_in") / "kept"
    folder.mkdir()
    half = len(rows) // 2
    pq.write_table(pa.Table.from_pylist(rows[:half]), folder / "part-00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[half:]), folder / "part-00001.parquet")
    return folder, expected


def _read(folder: Path) -> list[dict]:
    return pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]).to_pylist()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("dedup", epilog=DEDUP_EPILOG)(dedup_command)
    app.command("noop")(lambda: None)
    return app


def test_cli_dedups_english_and_chinese_and_conserves_every_document(ray_session, planted, tmp_path, corpus):
    """CONFIG is the shipped pipeline YAML (its dedup: section); flags set inputs, output and decontam."""
    folder, expected = planted
    out = tmp_path / "out2"
    result = CliRunner().invoke(
        _app(),
        [
            "dedup",
            "configs/pipeline.yaml",
            "--input",
            str(folder),
            "--output",
            str(out),
            "--set",
            "dedup.survivor=quality",
            "--decontam",
            str(corpus / "eval" / "gsm8k_openai" / "test.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    kept, rejected = _read(out / "kept"), _read(out / "rejected")
    inputs = _read(folder)
    assert sorted(r["id"] for r in kept + rejected) == sorted(r["id"] for r in inputs)
    got = {r["id"]: r["reject"] for r in rejected}
    assert got == expected
    for r in rejected:
        if r["reject"].startswith("dedup:"):
            assert r["duplicate_of"] == r["id"].split("-")[0], "the original (higher quality) survives"
    sizes = {r["id"]: r["dup_cluster_size"] for r in kept}
    assert sizes["en0"] == 2 and sizes["zh3"] == 2 and sizes["en20"] == 1
    run = json.loads((out / "run.json").read_text())
    assert run["input"] == len(inputs) == run["kept"] + run["rejected"]
    assert sum(run["rejected_by_reason"].values()) == run["rejected"]
    assert run["rejected_by_reason"] == {
        "decontam:gsm8k_openai.test": 1,
        "dedup:exact": 5,
        "dedup:minhash": 13,
    }
    assert run["decontam"]["benchmarks"]["gsm8k_openai.test"]["examples"] == ["contaminated"]


def test_bad_setting_is_reported_by_key_before_any_work(planted, tmp_path):
    folder, _ = planted
    out = tmp_path / "never"
    result = CliRunner().invoke(
        _app(), ["dedup", "-i", str(folder), "-o", str(out), "--set", "minhash.num_perms=3"]
    )
    assert result.exit_code == 2 and "minhash.num_perms: unknown key" in result.output
    config = tmp_path / "dedup.yaml"
    config.write_text(f"inputs: [{folder}]\noutput: {out}\nsurvivor: biggest\n", encoding="utf-8")
    result = CliRunner().invoke(_app(), ["dedup", str(config)])
    assert result.exit_code == 2 and "dedup.yaml" in result.output and "survivor" in result.output
    assert not out.exists()
    result = CliRunner().invoke(_app(), ["dedup", str(CONFIG_DIR / "pipeline.yaml")])
    assert result.exit_code == 2 and "inputs" in result.output and "required" in result.output


def test_help_lists_every_dedup_key_with_its_default():
    result = CliRunner().invoke(_app(), ["dedup", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for key in (
        'survivor = "earliest"',
        "minhash.num_perm = 128",
        "decontam.enabled = false",
        "inputs = required",
    ):
        assert key in result.output, key


@pytest.mark.slow
def test_reingesting_a_batch_finds_it_all_as_duplicates(ray_session, planted, tmp_path):
    folder, _ = planted
    cfg = DedupConfig(
        incremental=IncrementalConfig(enabled=True, backend="local", path=tmp_path / "index.pkl"),
        survivor="longest",
    )
    first = run_dedup([folder], tmp_path / "first", cfg)
    # without decontamination the page carrying a GSM8K question is a near-duplicate of its source page
    assert first["rejected_by_reason"] == {"dedup:exact": 5, "dedup:minhash": 14}
    second = run_dedup([folder], tmp_path / "second", cfg)
    assert second["kept"] == 0 and second["rejected"] == second["input"]
    rejected = _read(tmp_path / "second" / "rejected")
    first_kept = {r["id"] for r in _read(tmp_path / "first" / "kept")}
    assert {r["duplicate_of"] for r in rejected} <= first_kept


@pytest.mark.slow
def test_semantic_phase_keeps_cluster_ids_and_conserves(ray_session, planted, tmp_path):
    folder, _ = planted
    cfg = DedupConfig(semantic={"enabled": True, "num_clusters": 4, "cosine_threshold": 0.9, "device": "cpu"})
    run = run_dedup([folder], tmp_path / "sem", cfg)
    kept = _read(tmp_path / "sem" / "kept")
    rejected = _read(tmp_path / "sem" / "rejected")
    assert run["kept"] + run["rejected"] == run["input"] == len(_read(folder))
    assert {r["semantic_cluster"] for r in kept} <= {0, 1, 2, 3} and all(
        r["semantic_cluster"] is not None for r in kept
    )
    semantic = [r for r in rejected if r["reject"] == "dedup:semantic"]
    assert run["rejected_by_reason"].get("dedup:semantic", 0) == len(semantic)
    kept_ids = {r["id"] for r in kept}
    assert all(r["duplicate_of"] in kept_ids for r in semantic)
