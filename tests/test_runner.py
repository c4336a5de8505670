"""Phase 1 end to end on Ray: conservation on a mixed real corpus, resume after kill -9, the report."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest
from stage_corpora import write_jsonl

from dataengine.config import load_pipeline_config
from dataengine.dedup.minhash import minhash_signatures, signatures_from_column
from dataengine.runner import RunError, run

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory, corpus) -> Path:
    """Real English web text, Chinese Wikipedia, code, a WARC, and a file of broken lines."""
    root = tmp_path_factory.mktemp("mixed")
    shutil.copy(corpus / "web/text/c4-sample.01.jsonl.gz", root / "c4.jsonl.gz")
    shutil.copy(ROOT / "sample/web_pages.warc.gz", root / "pages.warc.gz")
    zh = [json.loads(line) for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")]
    write_jsonl(root / "zh.jsonl", [{"id": d["id"], "text": d["text"]} for d in zh[:300]])
    with gzip.open(corpus / "code/code_files.jsonl.gz", "rt") as fh:
        code = [json.loads(next(fh)) for _ in range(40)]
    write_jsonl(root / "code.jsonl", [{"id": f"{c['repo']}/{c['path']}", "text": c["content"]} for c in code])
    ewt = [json.loads(line) for line in open(corpus / "web/text/ewt_web_docs.jsonl", encoding="utf-8")]
    write_jsonl(root / "ewt.jsonl", [{"id": d["doc_id"], "text": d["text"]} for d in ewt[:200]])
    with open(root / "broken.jsonl", "wb") as fh:
        fh.write(b'{"id": "ok", "text": "A fine sentence that is short."}\n')
        fh.write(b'{"id": "cut", "text": "no closing\n')
        fh.write(b'{"id": "num", "text": 42}\n')
        fh.write(b'{"id": "none"}\n')
        fh.write(b'{"id": "bad-utf8", "text": "caf\xe9"}\n')
    return root


def _kept_ids(out: Path) -> list[str]:
    return sorted(pq.read_table(out / "kept", columns=["id"]).column("id").to_pylist())


def test_conservation_on_mixed_corpus(ray_session, mixed_corpus, tmp_path):
    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", ["ray.num_workers=2", "ray.batch_size=64"])
    result = run(cfg, inputs=[str(mixed_corpus)], output=str(tmp_path / "out"), progress=False)
    out = tmp_path / "out"
    on_disk = json.loads((out / "run.json").read_text())
    assert on_disk["input"] == on_disk["kept"] + on_disk["rejected"] == result["input"]
    assert sum(on_disk["rejected_by_reason"].values()) == on_disk["rejected"]
    # phase 1 then the dedup phase (on in configs/pipeline.yaml): counts over both add up to the input
    assert on_disk["phase1"]["input"] == on_disk["phase1"]["kept"] + on_disk["phase1"]["rejected"]
    assert on_disk["dedup"]["input"] == on_disk["phase1"]["kept"]
    kept = pq.read_table(out / "kept")
    rejected = pq.read_table(out / "rejected")
    assert kept.num_rows == on_disk["phase1"]["kept"] and rejected.num_rows == on_disk["phase1"]["rejected"]
    final_kept = pq.read_table(out / "dedup" / "kept")
    dedup_rejected = pq.read_table(out / "dedup" / "rejected")
    assert final_kept.num_rows == on_disk["kept"]
    assert rejected.num_rows + dedup_rejected.num_rows == on_disk["rejected"]
    assert all(r.startswith("dedup:") for r in dedup_rejected.column("reject").to_pylist())
    # with dedup on, phase 1 wrote MinHash signatures of the kept en and zh text, and dedup reused every one
    sig, usable = signatures_from_column(kept.column("minhash"), cfg.dedup.minhash.num_perm)
    texts, langs = kept.column("text").to_pylist(), kept.column("lang").to_pylist()
    assert usable.all() and {"en", "zh"} <= set(langs)
    np.testing.assert_array_equal(sig, minhash_signatures(texts, langs, cfg.dedup.minhash))
    assert on_disk["dedup"]["minhash_signatures"] == {"from_column": kept.num_rows, "computed": 0}
    # every reason is stage:rule and every rejected row carries one
    reasons = set(rejected.column("reject").to_pylist())
    assert all(":" in r for r in reasons)
    # the broken lines are rejected rows with io reasons, the file named in source
    io_rows = [r for r in rejected.to_pylist() if r["reject"].startswith("io:")]
    assert len([r for r in io_rows if "broken.jsonl" in r["source"]]) == 4
    # Chinese Wikipedia mostly survives; language ID put zh on it
    zh_kept = [r for r in kept.select(["source", "lang"]).to_pylist() if "zh.jsonl" in r["source"]]
    assert len(zh_kept) >= 0.85 * 300
    # zh, or lzh for a paragraph made mostly of quoted Song poems (TRIAL_142, on the poet 魏玩)
    langs = [r["lang"] for r in zh_kept]
    assert set(langs) <= {"zh", "lzh"} and langs.count("lzh") <= 0.01 * len(langs)
    # signals are columns on both sides, so a user can re-threshold
    assert any(name.startswith("gopher.") for name in kept.column_names)
    assert set(kept.column_names) <= set(rejected.column_names)
    # per detected language and per input file, counts add up to the totals of both phases
    for name in ("by_language", "by_source"):
        groups = on_disk[name]
        for key in ("input", "kept", "rejected"):
            assert sum(g[key] for g in groups.values()) == on_disk[key], (name, key)
    by_file = {Path(k).name: g for k, g in on_disk["by_source"].items()}
    assert set(by_file) == {p.name for p in mixed_corpus.iterdir()}
    assert sum(n for r, n in by_file["broken.jsonl"]["reasons"].items() if r.startswith("io:")) == 4
    assert on_disk["by_language"]["unknown"]["reasons"].keys() <= {r for r in reasons if r.startswith("io:")}
    assert on_disk["by_language"]["zh"]["kept"] >= 0.85 * 300
    # the report exists with its charts and the per-language and per-file tables
    assert (out / "report.html").stat().st_size > 500
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "keep rate by language" in page and "<td>broken.jsonl</td>" in page
    assert all(
        (out / "report" / f"{c}.png").stat().st_size > 1000 for c in ("funnel", "reasons", "languages")
    )


def _zh_and_en_docs(data: Path, n: int) -> list[dict]:
    """The first n Chinese Wikipedia contexts, then the first n English web documents."""
    with open(data / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        zh = [json.loads(line) for line in fh][:n]
    with open(data / "web/text/ewt_web_docs.jsonl", encoding="utf-8") as fh:
        en = [json.loads(line) for line in fh][:n]
    return [{"id": d["id"], "text": d["text"]} for d in zh] + [
        {"id": d["doc_id"], "text": d["text"]} for d in en
    ]


def test_output_order_does_not_depend_on_where_the_corpus_lives(ray_session, corpus, tmp_path):
    """Parts are named by plan position: a copy of the corpus elsewhere gives the same documents in the
    same order, so dedup and pack downstream produce the same shards."""
    docs = _zh_and_en_docs(corpus, 60)
    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", ["write.report=false", "dedup=null"])
    ordered = []
    for home in ("a", "b/deeper/still"):
        inputs = tmp_path / home / "corpus"
        inputs.mkdir(parents=True)
        for part in range(6):
            write_jsonl(inputs / f"part-{part}.jsonl", docs[part::6])
        out = tmp_path / home / "out"
        run(cfg, inputs=[str(inputs)], output=str(out), progress=False)
        names = sorted(p.name for p in (out / "kept").glob("*.parquet"))
        assert [n[:10] for n in names] == [f"part-{i:05d}" for i in range(6)]
        ordered.append([i for n in names for i in pq.read_table(out / "kept" / n).column("id").to_pylist()])
    assert ordered[0] == ordered[1]
    assert len(ordered[0]) > 60, "both languages kept"


def test_second_run_on_same_output_resumes_everything(ray_session, mixed_corpus, tmp_path):
    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", ["write.report=false", "dedup=null"])
    first = run(cfg, inputs=[str(mixed_corpus)], output=str(tmp_path / "out"), progress=False)
    again = run(cfg, inputs=[str(mixed_corpus)], output=str(tmp_path / "out"), progress=False)
    assert again["units"]["resumed_from_previous_run"] == again["units"]["total"]
    assert (again["input"], again["kept"]) == (first["input"], first["kept"])
    changed = load_pipeline_config(
        ROOT / "configs/pipeline.yaml", ["stages.langid.threshold=0.9", "dedup=null"]
    )
    with pytest.raises(RunError, match="other inputs or settings"):
        run(changed, inputs=[str(mixed_corpus)], output=str(tmp_path / "out"), progress=False)


def test_resume_refuses_inputs_changed_since_the_run_started(ray_session, corpus, tmp_path):
    """An appended file keeps its unit, so a resume would count the old unit done and lose the new
    records: the inputs' sizes and modification times are part of the plan. A stray LICENSE or CSV
    in an input folder is set aside (named in run.json), not a reason to stop."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    zh = [json.loads(line) for line in open(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8")]
    ewt = [json.loads(line) for line in open(corpus / "web/text/ewt_web_docs.jsonl", encoding="utf-8")]
    write_jsonl(inputs / "zh.jsonl", [{"id": d["id"], "text": d["text"]} for d in zh[:100]])
    write_jsonl(inputs / "en.jsonl", [{"id": d["doc_id"], "text": d["text"]} for d in ewt[:100]])
    (inputs / "LICENSE").write_text("CC BY-SA 4.0\n")
    (inputs / "notes.csv").write_text("id,comment\n1,checked\n")
    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", ["write.report=false", "dedup=null"])
    first = run(cfg, inputs=[str(inputs)], output=str(tmp_path / "out"), progress=False)
    assert first["input"] == 200
    assert sorted(Path(p).name for p in first["inputs_set_aside"]) == ["LICENSE", "notes.csv"]
    with open(inputs / "en.jsonl", "a", encoding="utf-8") as f:  # 50 more records after the run
        f.writelines(json.dumps({"id": d["doc_id"], "text": d["text"]}) + "\n" for d in ewt[100:150])
    with pytest.raises(RunError, match=r"changed since it started \(.*en\.jsonl: \d+ -> \d+ bytes\)"):
        run(cfg, inputs=[str(inputs)], output=str(tmp_path / "out"), progress=False)
    again = run(cfg, inputs=[str(inputs)], output=str(tmp_path / "fresh"), progress=False)
    assert again["input"] == 250  # a new output reads the new records
    with pytest.raises(ValueError, match="cannot tell the format of .*LICENSE"):
        run(cfg, inputs=[str(inputs / "LICENSE")], output=str(tmp_path / "named"), progress=False)


def _kill_session(proc: subprocess.Popen) -> None:
    """SIGKILL the job and every Ray process it started, as a lost node would.

    Ray workers put themselves in their own process group, so killing the driver's group
    alone leaves a worker to finish its unit after the count is taken.
    """
    session = os.getsid(proc.pid)
    members = [p for p in psutil.process_iter() if _in_session(p, session)]
    for p in members:
        try:
            p.kill()
        except psutil.Error:
            pass
    proc.wait()
    psutil.wait_procs(members, timeout=10)


def _in_session(p: psutil.Process, session: int) -> bool:
    try:
        return os.getsid(p.pid) == session
    except (ProcessLookupError, psutil.Error):
        return False


def test_resume_after_kill_gives_the_same_rows(ray_session, corpus, tmp_path):
    """kill -9 a running job, run it again on the same OUT: same kept set, nothing twice."""
    inputs = tmp_path / "corpus"
    inputs.mkdir()
    docs = _zh_and_en_docs(corpus, 600)
    for part in range(12):
        write_jsonl(inputs / f"part-{part:02d}.jsonl", docs[part::12])
    overrides = ["ray.num_workers=1", "ray.batch_size=16", "write.report=false", "dedup=null"]
    interrupted = tmp_path / "interrupted"
    cmd = [
        sys.executable,
        "-m",
        "dataengine",
        "run",
        str(ROOT / "configs/pipeline.yaml"),
        "--input",
        str(inputs),
        "--output",
        str(interrupted),
        "--quiet",
    ] + [a for o in overrides for a in ("--set", o)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list((interrupted / "_units").glob("*.json"))) < 4:
        time.sleep(0.2)
    _kill_session(proc)
    finished_before = len(list((interrupted / "_units").glob("*.json"))) - 1  # minus plan.json
    assert 0 < finished_before < 12, "the kill should land mid-run"

    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", overrides)
    resumed = run(cfg, inputs=[str(inputs)], output=str(interrupted), progress=False)
    clean = run(cfg, inputs=[str(inputs)], output=str(tmp_path / "clean"), progress=False)
    assert resumed["units"]["resumed_from_previous_run"] == finished_before
    assert resumed["input"] == clean["input"] == len(docs)
    # the per-language and per-file counts, summed from the markers of both runs, are the clean run's
    assert resumed["by_language"] == clean["by_language"] and resumed["by_source"] == clean["by_source"]
    assert {"zh", "en"} <= set(clean["by_language"]) and len(clean["by_source"]) == 12
    ids = _kept_ids(interrupted)
    assert ids == _kept_ids(tmp_path / "clean")
    assert len(ids) == len(set(ids)) == resumed["kept"]
    for part in sorted((tmp_path / "clean" / "kept").glob("*.parquet")):
        assert (interrupted / "kept" / part.name).read_bytes() == part.read_bytes()
