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
    # DESIGN §3.2: OUT/kept is the final kept set; each phase's own output lives in its own folder
    kept = pq.read_table(out / "phase1" / "kept")
    rejected = pq.read_table(out / "phase1" / "rejected")
    assert kept.num_rows == on_disk["phase1"]["kept"] and rejected.num_rows == on_disk["phase1"]["rejected"]
    final_kept = pq.read_table(out / "kept")
    dedup_rejected = pq.read_table(out / "dedup" / "rejected")
    assert final_kept.num_rows == on_disk["kept"] < kept.num_rows
    assert not (out / "dedup" / "kept").exists() and not (out / "_units").exists()
    assert on_disk["output"]["kept"] == str(out / "kept")
    assert rejected.num_rows + dedup_rejected.num_rows == on_disk["rejected"]
    assert all(r.startswith("dedup:") for r in dedup_rejected.column("reject").to_pylist())
    # the final kept set is phase 1's minus dedup's rejections, and its bytes are counted as such
    final_ids = set(final_kept.column("id").to_pylist())
    assert final_ids | set(dedup_rejected.column("id").to_pylist()) == set(kept.column("id").to_pylist())
    final_bytes = sum(len(t.encode()) for t in final_kept.column("text").to_pylist())
    assert on_disk["kept_bytes"] == on_disk["funnel_bytes"]["dedup"] == final_bytes
    assert on_disk["phase1"]["kept_bytes"] == sum(len(t.encode()) for t in kept.column("text").to_pylist())
    timings = on_disk["timings"]
    assert timings["wall_s"] >= timings["phase1_s"] + timings["dedup_s"]
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


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_resume_after_kill_gives_the_same_rows(ray_session, corpus, tmp_path, executor):
    """kill -9 a running job, run it again on the same OUT: same kept set, nothing twice, whether
    units ran on Ray or in the process."""
    inputs = tmp_path / "corpus"
    inputs.mkdir()
    docs = _zh_and_en_docs(corpus, 600)
    for part in range(12):
        write_jsonl(inputs / f"part-{part:02d}.jsonl", docs[part::12])
    overrides = [
        "ray.num_workers=1",
        "ray.batch_size=16",
        "write.report=false",
        "dedup=null",
        f"ray.executor={executor}",
    ]
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


def _local(extra: list[str]) -> object:
    return load_pipeline_config(
        ROOT / "configs/pipeline.yaml",
        ["write.report=false", "ray.executor=local", "ray.batch_size=32", *extra],
    )


def _tables(out: Path, part: str) -> dict[str, object]:
    return {p.name: pq.read_table(p) for p in sorted((out / part).glob("*.parquet"))}


def test_in_process_executor_writes_what_ray_writes(ray_session, mixed_corpus, tmp_path):
    """The same units, markers and rows whether phase 1 ran on Ray actors or in this process."""
    sets = ["dedup=null", "input.unit_bytes=20000"]  # zh.jsonl becomes several units
    local = run(_local(sets), inputs=[str(mixed_corpus)], output=str(tmp_path / "local"), progress=False)
    on_ray = load_pipeline_config(
        ROOT / "configs/pipeline.yaml", ["write.report=false", "ray.executor=ray", "ray.batch_size=32", *sets]
    )
    remote = run(on_ray, inputs=[str(mixed_corpus)], output=str(tmp_path / "ray"), progress=False)
    assert (local["timings"]["executor"], remote["timings"]["executor"]) == ("local", "ray")
    assert local["units"]["total"] == remote["units"]["total"] > len(list(mixed_corpus.iterdir()))
    for key in (
        "input",
        "kept",
        "rejected",
        "rejected_by_reason",
        "by_language",
        "by_source",
        "funnel_bytes",
    ):
        assert local[key] == remote[key], key
    for part in ("kept", "rejected"):
        a, b = _tables(tmp_path / "local", part), _tables(tmp_path / "ray", part)
        assert list(a) == list(b) and all(a[n].equals(b[n]) for n in a), part
    markers = sorted(p.name for p in (tmp_path / "local" / "_units").glob("*.json"))
    assert markers == sorted(p.name for p in (tmp_path / "ray" / "_units").glob("*.json"))


def test_in_process_failing_unit_is_recorded_and_retried(mixed_corpus, tmp_path, monkeypatch):
    """A unit that raises is a failed unit in run.json and RunError; the others finish; a re-run does it."""
    import dataengine.runner as runner

    reader = runner.read_unit

    def flaky(unit, cfg):
        if unit.path.endswith("ewt.jsonl"):
            raise OSError("disk went away")
        return reader(unit, cfg)

    monkeypatch.setattr(runner, "read_unit", flaky)
    out = tmp_path / "out"
    with pytest.raises(RunError, match=r"(?s)1 unit\(s\) failed.*ewt\.jsonl: OSError: disk went away"):
        run(_local(["dedup=null"]), inputs=[str(mixed_corpus)], output=str(out), progress=False)
    on_disk = json.loads((out / "run.json").read_text())
    assert on_disk["units"]["failed"] == 1 and on_disk["failed_units"][0].endswith("disk went away")
    assert on_disk["input"] > 0 and not any("ewt" in p.name for p in (out / "kept").iterdir())
    monkeypatch.setattr(runner, "read_unit", reader)
    again = run(_local(["dedup=null"]), inputs=[str(mixed_corpus)], output=str(out), progress=False)
    assert again["units"]["resumed_from_previous_run"] == again["units"]["total"] - 1
    clean = run(
        _local(["dedup=null"]), inputs=[str(mixed_corpus)], output=str(tmp_path / "c"), progress=False
    )
    assert again["by_source"] == clean["by_source"] and again["kept"] == clean["kept"]


def test_dedup_layout_resume_and_switch(corpus, tmp_path):
    """With dedup on: phase 1 in OUT/phase1, OUT/kept the final set; a move cut short is finished by a
    re-run; a run with the other dedup setting on the same OUT is refused rather than mixed."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    docs = _zh_and_en_docs(corpus, 120)
    write_jsonl(inputs / "a.jsonl", docs)
    write_jsonl(inputs / "b.jsonl", docs[:60])  # exact copies: dedup rejects 60
    out = tmp_path / "out"
    first = run(_local([]), inputs=[str(inputs)], output=str(out), progress=False)
    assert first["phase1"]["kept"] - first["kept"] >= first["rejected_by_reason"]["dedup:exact"] >= 50
    final = sorted(pq.read_table(out / "kept", columns=["id"])["id"].to_pylist())
    assert len(final) == len(set(final)) == first["kept"]
    # a crash while moving dedup's kept files into OUT/kept: one moved, the others still in OUT/dedup/kept
    (out / "dedup" / "kept").mkdir()
    for path in sorted((out / "kept").glob("*.parquet"))[1:]:
        path.rename(out / "dedup" / "kept" / path.name)
    again = run(_local([]), inputs=[str(inputs)], output=str(out), progress=False)
    assert again["kept"] == first["kept"] and again["units"]["resumed_from_previous_run"] == 2
    assert sorted(pq.read_table(out / "kept", columns=["id"])["id"].to_pylist()) == final
    assert not (out / "dedup" / "kept").exists()
    with pytest.raises(RunError, match=r"holds a run with the dedup phase \(phase 1 in OUT/phase1\)"):
        run(_local(["dedup=null"]), inputs=[str(inputs)], output=str(out), progress=False)
    plain = tmp_path / "plain"
    run(_local(["dedup=null"]), inputs=[str(inputs)], output=str(plain), progress=False)
    assert (plain / "_units").is_dir() and not (plain / "phase1").exists()
    with pytest.raises(RunError, match="whose phase 1 wrote OUT/kept itself"):
        run(_local([]), inputs=[str(inputs)], output=str(plain), progress=False)


def test_auto_executor_runs_small_jobs_without_ray(monkeypatch):
    from dataengine.runner import choose_executor

    cfg = load_pipeline_config(ROOT / "configs/pipeline.yaml", [])
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delitem(sys.modules, "ray", raising=False)  # as in a fresh `dataengine run`
    assert cfg.ray.executor == "auto" and cfg.ray.local_max_bytes == 64 * 2**20
    assert choose_executor(cfg, 20_000_000) == "local"
    assert choose_executor(cfg, 65 * 2**20) == "ray"  # larger jobs use every core
    address = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"address": "10.0.0.1:6379"})})
    assert choose_executor(address, 1000) == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert choose_executor(cfg, 1000) == "ray"
    forced = cfg.model_copy(update={"ray": cfg.ray.model_copy(update={"executor": "local"})})
    assert choose_executor(forced, 10**12) == "local"
