"""MinHash signatures written by phase 1 and reused by the dedup phase on real English and Chinese text."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataengine.api import process
from dataengine.config import PipelineConfig
from dataengine.dedup.config import DedupConfig, MinHashConfig
from dataengine.dedup.minhash import minhash_signatures, signatures_from_column, stored_signatures_match
from dataengine.dedup.passes import MetaReader
from dataengine.dedup.runner import run_dedup


def _near(text: str, rate: float, rng: random.Random, cjk: bool) -> str:
    units = list(text) if cjk else text.split(" ")
    return ("" if cjk else " ").join(u for u in units if rng.random() >= rate)


@pytest.fixture(scope="module")
def documents(corpus) -> list[dict]:
    """Real en and zh documents plus planted near-duplicates (1% of words or characters deleted)."""
    rng = random.Random(3)
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        en = [t for t in (json.loads(line)["text"] for line in fh) if len(t) >= 700][:24]
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        zh = [json.loads(line)["text"] for line in fh][:24]
    rows = [{"id": f"en{i}", "text": t} for i, t in enumerate(en)]
    rows += [{"id": f"zh{i}", "text": t} for i, t in enumerate(zh)]
    rows += [{"id": f"en{i}-near", "text": _near(en[i], 0.01, rng, False)} for i in range(6)]
    rows += [{"id": f"zh{i}-near", "text": _near(zh[i], 0.01, rng, True)} for i in range(6)]
    rows.append({"id": "en0-copy", "text": "  " + en[0].replace(". ", ".  ")})
    return rows


def _phase1(documents: list[dict], **write) -> tuple[pa.Table, pa.Table]:
    result = process(documents, {"write": write, "dedup": {"minhash": {"num_perm": 64, "seed": 5}}})
    return result.kept, result.rejected


def test_phase1_writes_signatures_of_the_kept_en_and_zh_text(documents):
    kept, rejected = _phase1(documents)  # write.minhash unset: on because dedup runs MinHash
    cfg = MinHashConfig(num_perm=64, seed=5)
    assert {"en", "zh"} <= set(kept.column("lang").to_pylist())
    sig, usable = signatures_from_column(kept.column("minhash"), cfg.num_perm)
    assert usable.all()
    expected = minhash_signatures(kept.column("text").to_pylist(), kept.column("lang").to_pylist(), cfg)
    np.testing.assert_array_equal(sig, expected)
    # the parameters travel with the file; other parameters do not match
    assert stored_signatures_match(kept.schema, cfg)
    assert not stored_signatures_match(kept.schema, MinHashConfig())
    assert rejected.column("minhash").null_count == rejected.num_rows


def test_signatures_are_off_without_dedup_and_switchable(documents):
    plain = process(documents[:3]).kept
    assert "minhash" not in plain.column_names
    assert "minhash" not in _phase1(documents[:3], minhash=False)[0].column_names
    forced = process(documents[:3], {"write": {"minhash": True}}).kept
    assert stored_signatures_match(forced.schema, MinHashConfig())
    assert (
        PipelineConfig.model_validate({"dedup": {"minhash": {"enabled": False}}}).signature_config() is None
    )


def test_meta_pass_reuses_matching_signatures_and_recomputes_the_rest(documents, tmp_path):
    kept, _ = _phase1(documents)
    path = tmp_path / "part.parquet"
    pq.write_table(kept, path)
    texts, langs = kept.column("text").to_pylist(), kept.column("lang").to_pylist()

    def meta(cfg: MinHashConfig) -> dict:
        reader = MetaReader([str(path)], DedupConfig(minhash=cfg), None)
        return next(reader({"file": np.array([0])}))

    same = meta(MinHashConfig(num_perm=64, seed=5))
    assert same["_sig_stored"].all()
    other = meta(MinHashConfig(num_perm=64, seed=6))  # same length, other permutations: recomputed
    assert not other["_sig_stored"].any()
    np.testing.assert_array_equal(
        other["_sig"], minhash_signatures(texts, langs, MinHashConfig(num_perm=64, seed=6))
    )
    # a file whose parameters are unknown (no metadata) is recomputed too
    pq.write_table(kept.replace_schema_metadata(None), path)
    assert not meta(MinHashConfig(num_perm=64, seed=5))["_sig_stored"].any()


@pytest.mark.ray
def test_dedup_on_stored_signatures_decides_as_without_them(ray_session, documents, tmp_path):
    kept, _ = _phase1(documents)
    with_sig, without_sig = tmp_path / "with", tmp_path / "without"
    for folder, table in ((with_sig, kept), (without_sig, kept.drop_columns(["minhash"]))):
        folder.mkdir()
        half = table.num_rows // 2
        pq.write_table(table.slice(0, half), folder / "part-0.parquet")
        pq.write_table(table.slice(half), folder / "part-1.parquet")
    cfg = DedupConfig(minhash=MinHashConfig(num_perm=64, seed=5), survivor="earliest")
    runs, decisions = {}, {}
    for name, folder in (("with", with_sig), ("without", without_sig)):
        runs[name] = run_dedup([folder], tmp_path / f"out-{name}", cfg)
        rejected = pq.read_table(tmp_path / f"out-{name}" / "rejected").to_pylist()
        decisions[name] = sorted((r["id"], r["reject"], r["duplicate_of"]) for r in rejected)
    assert runs["with"]["minhash_signatures"] == {"from_column": kept.num_rows, "computed": 0}
    assert runs["without"]["minhash_signatures"] == {"from_column": 0, "computed": kept.num_rows}
    assert decisions["with"] == decisions["without"]
    reasons = {d[0]: (d[1], d[2]) for d in decisions["with"]}
    planted = [i for i in kept.column("id").to_pylist() if "-" in i]
    assert len(planted) >= 12 and set(planted) <= set(reasons), reasons
    assert all(reasons[i][1] == i.split("-")[0] for i in planted), "the earliest (original) survives"
    assert reasons["en0-copy"][0] == "dedup:exact"
    for lang in ("en", "zh"):
        assert sum(r == "dedup:minhash" and i.startswith(lang) for i, (r, _) in reasons.items()) >= 3
    assert runs["with"]["input"] == runs["with"]["kept"] + runs["with"]["rejected"] == kept.num_rows
    # the survivors keep their phase-1 signatures
    out_kept = pq.read_table(tmp_path / "out-with" / "kept")
    assert out_kept.column("minhash").null_count == 0


@pytest.mark.ray
def test_cut_by_decontamination_voids_the_stale_signature_only(ray_session, documents, corpus, tmp_path):
    with open(corpus / "eval" / "gsm8k_openai" / "test.jsonl", encoding="utf-8") as fh:
        question = json.loads(fh.readline())["question"]
    kept, _ = _phase1(documents[18:21] + documents[24:27])
    # a kept page into which a benchmark question was pasted, with the signature of the pasted text
    rows = kept.to_pylist()
    page = next(r for r in rows if r["lang"] == "en")
    page.update(id="pasted", text=page["text"] + "\n" + question)
    cfg = MinHashConfig(num_perm=64, seed=5)
    page["minhash"] = minhash_signatures([page["text"]], ["en"], cfg)[0].tolist()
    kept = pa.Table.from_pylist(rows, schema=kept.schema)
    folder = tmp_path / "in"
    folder.mkdir()
    pq.write_table(kept, folder / "part-0.parquet")
    cfg = DedupConfig(
        minhash=MinHashConfig(num_perm=64, seed=5),
        decontam={
            "enabled": True,
            "benchmarks": [corpus / "eval" / "gsm8k_openai" / "test.jsonl"],
            "policy": "cut",
        },
    )
    run = run_dedup([folder], tmp_path / "out", cfg)
    assert run["decontam"]["benchmarks"]["gsm8k_openai.test"]["documents"] == 1, run["decontam"]
    assert run["rejected"] == 0 and run["minhash_signatures"] == {
        "from_column": kept.num_rows - 1,
        "computed": 1,
    }
    out = {r["id"]: r for r in pq.read_table(tmp_path / "out" / "kept").to_pylist()}
    before = {r["id"]: r for r in kept.to_pylist()}
    assert question not in out["pasted"]["text"] and out["pasted"]["minhash"] is None
    for i, row in out.items():
        if i != "pasted":  # untouched rows keep their text and signature
            assert row["text"] == before[i]["text"] and row["minhash"] == before[i]["minhash"]
