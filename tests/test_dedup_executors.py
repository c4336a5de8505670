"""Phase 2's two executors decide alike, on real English and Chinese text, on local paths and on S3.

The in-process executor (small jobs, no Ray) must give every document the same decision as the Ray
path: the same kept ids, reasons, duplicate_of, clusters and sizes, and the same run.json counts.
Inputs: Common Crawl pages (with their URLs) and UD English Web Treebank documents, zh-Wikipedia
paragraphs (CMRC 2018), with planted exact copies, near-duplicates, URL duplicates and a GSM8K question.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from s3_server import list_files, upload

from dataengine.dedup.config import DedupConfig, optimal_bands
from dataengine.dedup.executors import components
from dataengine.dedup.files import read_table
from dataengine.dedup.runner import run_dedup
from dataengine.dedup.writer import join

ROOT = Path(__file__).resolve().parents[1]


def _near(text: str, rate: float, rng: random.Random, cjk: bool) -> str:
    units = list(text) if cjk else text.split(" ")
    gone = set(rng.sample(range(len(units)), max(1, round(rate * len(units)))))
    return ("" if cjk else " ").join(u for i, u in enumerate(units) if i not in gone)


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def documents(corpus) -> list[dict]:
    """Real documents with planted duplicates of every kind, shuffled."""
    rng = random.Random(11)
    web = corpus / "web" / "text"
    pages = [
        r for n in ("0091", "0174") for r in _jsonl(web / f"cc_en_head-{n}.jsonl") if len(r["text"]) >= 400
    ]
    cc, other_pages = pages[:15], pages[15:18]
    ewt = [r["text"] for r in _jsonl(web / "ewt_web_docs.jsonl") if len(r["text"]) >= 700][:30]
    zh = [r["text"] for r in _jsonl(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl")][:40]
    question = _jsonl(corpus / "eval" / "gsm8k_openai" / "test.jsonl")[0]["question"]
    rows = [
        {"id": f"cc{i}", "text": r["text"], "lang": "en", "url": r["id"], "quality": rng.random()}
        for i, r in enumerate(cc)
    ]
    rows += [
        {"id": f"ewt{i}", "text": t, "lang": "en", "url": None, "quality": rng.random()}
        for i, t in enumerate(ewt)
    ]
    rows += [
        {"id": f"zh{i}", "text": t, "lang": "zh", "url": None, "quality": rng.random()}
        for i, t in enumerate(zh)
    ]
    for i in range(6):  # exact copies, re-cased and re-spaced
        rows.append(
            {"id": f"ewt{i}-copy", "text": "  " + ewt[i].upper(), "lang": "en", "url": None, "quality": 0.2}
        )
    for i in range(6, 14):  # near-duplicates (2% of words or characters deleted)
        rows.append(
            {
                "id": f"ewt{i}-near",
                "text": _near(ewt[i], 0.02, rng, False),
                "lang": "en",
                "url": None,
                "quality": 0.9,
            }
        )
        rows.append(
            {
                "id": f"zh{i}-near",
                "text": _near(zh[i], 0.02, rng, True),
                "lang": None,
                "url": None,
                "quality": 0.1,
            }
        )
    for i in range(3):  # the same page under another spelling of its URL, with other text
        rows.append(
            {
                "id": f"cc{i}-url",
                "text": other_pages[i]["text"],
                "lang": "en",
                "url": cc[i]["id"] + "#top",
                "quality": 0.4,
            }
        )
    link = zh[20]
    for i in range(3):  # a chain: each link ~0.87 Jaccard to the previous one, its ends ~0.7 apart
        link = _near(link, 0.015, rng, True)
        rows.append(
            {
                "id": f"zh20-chain{i}",
                "text": link,
                "lang": "zh",
                "url": None,
                "quality": 0.5,
            }
        )
    rows.append(
        {"id": "contaminated", "text": ewt[25] + "\n" + question, "lang": "en", "url": None, "quality": 0.5}
    )
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def input_dir(documents, tmp_path_factory) -> Path:
    """Three Parquet files of phase-1 rows."""
    folder = tmp_path_factory.mktemp("exec_in") / "kept"
    folder.mkdir()
    third = len(documents) // 3
    for i in range(3):
        part = documents[i * third : (i + 1) * third if i < 2 else None]
        pq.write_table(pa.Table.from_pylist(part), folder / f"part-{i:05d}.parquet")
    return folder


def _config(corpus: Path, executor: str) -> DedupConfig:
    return DedupConfig(
        executor=executor,
        survivor="quality",
        exact={"url": True},
        decontam={"enabled": True, "benchmarks": [corpus / "eval" / "gsm8k_openai" / "test.jsonl"]},
    )


def _decisions(out: str) -> dict[str, tuple]:
    """Every written row's decision, by id: (folder, reason, duplicate_of, cluster, cluster size)."""
    found = {}
    for sub in ("kept", "rejected"):
        for name in (
            list_files(join(out, sub)) if "://" in out else sorted(p.name for p in Path(out, sub).iterdir())
        ):
            for r in read_table(join(out, sub, name)).to_pylist():
                found[r["id"]] = (
                    sub,
                    r.get("reject"),
                    r.get("duplicate_of"),
                    r.get("dup_cluster"),
                    r.get("dup_cluster_size"),
                )
    return found


def _summary(run: dict) -> dict:
    return {
        k: run[k]
        for k in ("input", "kept", "rejected", "rejected_by_reason", "decontam", "minhash_signatures")
    }


@pytest.mark.ray
def test_ray_on_s3_and_local_in_process_decide_identically(
    ray_session, corpus, input_dir, documents, s3_uri, tmp_path
):
    """The same input through Ray (read from and written to S3) and in process (local paths)."""
    local = run_dedup([input_dir], tmp_path / "local", _config(corpus, "local"))
    upload(input_dir, join(s3_uri, "in"))
    remote = run_dedup([join(s3_uri, "in")], join(s3_uri, "out"), _config(corpus, "ray"))
    assert _summary(local) == _summary(remote)
    assert local["rejected_by_reason"] == {
        "decontam:gsm8k_openai.test": 1,
        "dedup:exact": 6,
        "dedup:minhash": 18,
        "dedup:url": 3,
    }
    got_local, got_remote = _decisions(str(tmp_path / "local")), _decisions(join(s3_uri, "out"))
    assert got_local == got_remote
    assert sorted(got_local) == sorted(r["id"] for r in documents)
    quality = {r["id"]: r["quality"] for r in documents}
    for doc, (_, reason, dup_of, _, _) in got_local.items():
        if reason and reason.startswith("dedup:"):
            assert got_local[dup_of][0] == "kept" and quality[dup_of] >= quality[doc], doc
    chain = [got_local[d] for d in ("zh20", "zh20-chain0", "zh20-chain1", "zh20-chain2")]
    assert [c[0] for c in chain].count("kept") == 1, "a chain of near-duplicates is one component"
    survivor = next(c for c in chain if c[0] == "kept")
    assert survivor[4] == 4 and all(c[2] in (None, survivor[3]) for c in chain)
    assert list_files(join(s3_uri, "out")) == sorted(
        [f"{sub}/part-{i:05d}.parquet" for sub in ("kept", "rejected") for i in range(3)] + ["run.json"]
    )


def test_s3_rerun_replaces_parts_and_stages_jsonl(corpus, input_dir, documents, s3_uri):
    """In process on S3: JSONL input staged under OUT/_staged on the bucket, a re-run with fewer inputs
    deletes the previous run's parts, and run.json is written last."""
    upload(input_dir, join(s3_uri, "in"))
    lines = [json.dumps({"text": r["text"], "id": r["id"]}, ensure_ascii=False) for r in documents[:30]]
    lines.insert(5, "not json at all")
    from s3_server import put_bytes

    put_bytes(join(s3_uri, "jsonl", "docs.jsonl"), ("\n".join(lines) + "\n").encode())
    out = join(s3_uri, "out")
    first = run_dedup([join(s3_uri, "in"), join(s3_uri, "jsonl")], out, DedupConfig(executor="local"))
    assert first["input"] == len(documents) + 31 == first["kept"] + first["rejected"]
    assert first["rejected_by_reason"]["io:invalid_json"] == 1
    assert first["rejected_by_reason"]["dedup:exact"] >= 30  # the JSONL repeats 30 documents
    files = list_files(out)
    assert "run.json" in files and not any(f.startswith("_staged") for f in files)
    assert "rejected/io-00003-" in " ".join(files) and "kept/part-00003.parquet" in files
    second = run_dedup([join(s3_uri, "in", "part-00000.parquet")], out, DedupConfig(executor="local"))
    assert list_files(out) == ["kept/part-00000.parquet", "rejected/part-00000.parquet", "run.json"]
    kept = read_table(join(out, "kept", "part-00000.parquet"))
    assert (
        kept.num_rows == second["kept"]
        and second["input"] == pq.read_metadata(input_dir / "part-00000.parquet").num_rows
    )


def test_small_job_starts_no_ray_and_logs_each_pass(input_dir, tmp_path):
    """A fresh process: the default executor runs a small job without importing Ray, one log line a pass."""
    code = (
        "import logging, sys, json\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s', stream=sys.stdout)\n"
        "from dataengine.dedup.runner import run_dedup\n"
        f"run = run_dedup([{str(input_dir)!r}], {str(tmp_path / 'out')!r})\n"
        "print('RAY', 'ray' in sys.modules)\n"
        "print('RUN', json.dumps(run['rejected_by_reason']))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "RAY False" in done.stdout
    for name in ("meta", "exact", "lsh", "components", "decisions", "write"):
        assert f"dataengine.dedup dedup {name}: " in done.stdout and "(local)" in done.stdout, name
    assert json.loads(done.stdout.split("RUN ", 1)[1])["dedup:exact"] == 6


def test_in_process_components_match_scipy_on_a_long_chain():
    rng = np.random.default_rng(3)
    x = rng.integers(-50, 5000, 3000)
    y = rng.integers(-50, 5000, 3000)
    chain = np.arange(10_000, 12_000)  # a path: many propagation rounds without pointer jumping
    x, y = np.concatenate([x, chain[:-1][::-1]]), np.concatenate([y, chain[1:][::-1]])
    nodes, comp = components(x, y)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    idx = {int(n): i for i, n in enumerate(nodes)}
    graph = coo_matrix(
        (np.ones(len(x)), ([idx[int(v)] for v in x], [idx[int(v)] for v in y])), shape=(len(nodes),) * 2
    )
    _, labels = connected_components(graph, directed=False)
    smallest = {}
    for node, label in zip(nodes.tolist(), labels.tolist(), strict=True):
        smallest[label] = min(smallest.get(label, node), node)
    assert comp.tolist() == [smallest[label] for label in labels.tolist()]
    assert comp[nodes == 11_999][0] == 10_000


def test_band_parameters_equal_datasketch():
    from datasketch.lsh import _optimal_param

    for threshold in (0.3, 0.5, 0.7, 0.8, 0.9):
        for num_perm in (32, 128, 256):
            for weights in ((0.5, 0.5), (0.2, 0.8)):
                assert optimal_bands(threshold, num_perm, *weights) == _optimal_param(
                    threshold, num_perm, *weights
                )


def test_input_inside_the_output_is_refused(input_dir, tmp_path):
    from dataengine.dedup.staging import InputError

    out = tmp_path / "out"
    run_dedup([input_dir], out, DedupConfig(executor="local"))
    with pytest.raises(InputError, match="kept"):
        run_dedup([out / "kept"], out, DedupConfig(executor="local"))


def test_pass_lines_reach_the_dataengine_logger(input_dir, tmp_path):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("dataengine.dedup")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        run = run_dedup(
            [input_dir], tmp_path / "out", DedupConfig(executor="local", minhash={"enabled": False})
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    lines = [r.getMessage() for r in records]
    assert any(line.startswith(f"dedup meta: {run['input']} rows in ") for line in lines), lines
    assert not any(line.startswith("dedup lsh") and "rows" not in line for line in lines)
    assert set(run["timings"]) >= {"meta", "exact", "lsh", "components", "decisions", "write", "total"}


def test_in_process_groups_are_ray_groups_for_string_and_number_keys():
    """group_map calls the function once per distinct key, whatever the key's type, as map_groups does."""
    from dataengine.dedup.executors import LocalExecutor

    ex = LocalExecutor(parts=4)
    names = np.array(["gsm8k.test", "mmlu.test", "gsm8k.test", "cmrc.dev", "mmlu.test"], dtype=object)
    rows = {"_contam": names, "n": np.arange(5)}

    def summary(g: dict) -> dict:
        assert len(set(g["_contam"].tolist())) == 1
        return {
            "_contam": g["_contam"][:1],
            "members": np.array([",".join(map(str, sorted(g["n"])))], dtype=object),
        }

    got = ex.group_map(rows, "_contam", summary)
    assert dict(zip(got["_contam"], got["members"], strict=True)) == {
        "gsm8k.test": "0,2",
        "mmlu.test": "1,4",
        "cmrc.dev": "3",
    }
    got = ex.group_map({"k": np.array([3, 1, 3]), "n": np.arange(3)}, "k", lambda g: {"size": [len(g["n"])]})
    assert sorted(got["size"]) == [1, 2]


@pytest.mark.slow
@pytest.mark.ray
def test_executors_agree_on_the_full_data_folder(ray_session, shared_data, tmp_path):
    """~1,400 web and zh-Wikipedia documents of ../shared/data with 300 planted copies, both executors."""
    import gzip

    rng = random.Random(5)
    en: list[str] = []
    for path in sorted((shared_data / "web" / "text").glob("*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            en += [
                t
                for t in (json.loads(line).get("text") for line in fh)
                if isinstance(t, str) and len(t) > 300
            ]
    zh = [r["text"] for r in _jsonl(shared_data / "zh" / "cmrc2018_zhwiki_contexts.jsonl")]
    en, zh = rng.sample(en, min(900, len(en))), zh[:500]
    rows = [{"id": f"en{i}", "text": t, "lang": "en", "quality": rng.random()} for i, t in enumerate(en)]
    rows += [{"id": f"zh{i}", "text": t, "lang": "zh", "quality": rng.random()} for i, t in enumerate(zh)]
    originals = list(rows)
    for k, row in enumerate(rng.sample(originals, 300)):
        cjk = row["lang"] == "zh"
        text = row["text"].upper() if k % 3 == 0 else _near(row["text"], 0.02, rng, cjk)
        rows.append({"id": f"{row['id']}-copy", "text": text, "lang": row["lang"], "quality": rng.random()})
    rng.shuffle(rows)
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(4):
        pq.write_table(pa.Table.from_pylist(rows[k::4]), folder / f"part-{k:05d}.parquet")
    runs = {
        ex: run_dedup([folder], tmp_path / ex, DedupConfig(executor=ex, survivor="quality"))
        for ex in ("local", "ray")
    }
    assert _summary(runs["local"]) == _summary(runs["ray"])
    assert runs["local"]["rejected_by_reason"]["dedup:exact"] >= 100
    assert runs["local"]["rejected_by_reason"]["dedup:minhash"] >= 150
    assert _decisions(str(tmp_path / "local")) == _decisions(str(tmp_path / "ray"))
