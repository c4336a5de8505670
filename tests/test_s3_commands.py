"""`dataengine calibrate` and the `quality` / `category` training commands with their inputs on a local
S3 server (moto): they expand inputs through ``dataengine.io.paths.expand_inputs`` like every command,
so a folder URI reads as a local folder does. Real Chinese (CMRC 2018 zh-Wikipedia) and English
(EWT web) text from tests/data."""

from __future__ import annotations

import json
from pathlib import Path

from s3_server import get_bytes, list_files, upload
from stage_corpora import cmrc_paragraphs
from typer.testing import CliRunner

from dataengine.classifiers.commands import read_documents
from dataengine.cli import app
from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs


def _invoke(args: list[str]):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_calibrate_reads_reference_and_writes_thresholds_on_s3(corpus, s3_uri, tmp_path):
    """The same thresholds from the reference on S3 as from the local file, written to S3."""
    rows = [{"id": f"cmrc-{i}", "text": t} for i, t in enumerate(cmrc_paragraphs(corpus)[:600])]
    local = tmp_path / "ref" / "zh.jsonl"
    local.parent.mkdir()
    local.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    remote = upload(local.parent, f"{s3_uri}/ref")
    common = ["--lang", "zh", "--mode", "quantile", "--name", "cmrc", "--set", "max_documents=600"]
    _invoke(["calibrate", "-r", str(local), "-o", str(tmp_path / "zh.yaml"), *common])
    _invoke(["calibrate", "-r", remote, "-o", f"{s3_uri}/thresholds/zh.yaml", *common])
    here = (tmp_path / "zh.yaml").read_text(encoding="utf-8")
    there = get_bytes(f"{s3_uri}/thresholds/zh.yaml").decode()
    assert "lang=zh" in there and "min_stop_words" in there

    def without_paths(text: str) -> list[str]:
        return [line for line in text.splitlines() if str(local) not in line and remote not in line]

    assert without_paths(there) == without_paths(here)


def test_classifier_training_reads_s3_inputs(corpus, s3_uri):
    """`quality train` and `category train` read their documents (--positive/--negative, --label, -i)
    through ``read_documents``: a folder URI gives the local files' documents, in the same order, with
    the label column carried. (Training itself is fastText on those texts: ~30 s, left to
    test_classifier_training.py.)"""
    zh = corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl"
    ewt = corpus / "web" / "text" / "ewt_web_docs.jsonl"
    upload(zh, f"{s3_uri}/docs/zh.jsonl")
    upload(ewt, f"{s3_uri}/docs/web/ewt.jsonl")
    assert expand_inputs([f"{s3_uri}/docs"]) == [f"{s3_uri}/docs/web/ewt.jsonl", f"{s3_uri}/docs/zh.jsonl"]
    config = InputConfig()
    remote = list(read_documents([f"{s3_uri}/docs"], config, column="lang"))
    local = list(read_documents([str(ewt), str(zh)], config, column="lang"))
    assert len(remote) == len(local) > 1000
    # texts equal; a record without an id is named by its location (`dataengine run`'s rule), so ids differ
    assert [r["text"] for r in remote] == [r["text"] for r in local]
    assert any("的" in r["text"] for r in remote) and any(" the " in r["text"] for r in remote)


def test_classifier_model_output_must_be_local(s3_uri):
    """fastText writes its model file itself: an s3:// output is refused up front, naming it."""
    out = f"{s3_uri}/m.ftz"
    result = CliRunner().invoke(
        app, ["category", "train", "--label", "a=x.jsonl", "--label", "b=y", "-o", out]
    )
    assert result.exit_code == 2 and out in result.output and "local path" in result.output
    assert not Path("s3:").exists()


def _kept_ids(kept_uri: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataengine.io.paths import resolve

    files = [f for f in list_files(kept_uri) if f.endswith(".parquet")]
    assert files, f"{kept_uri} has no parquet files"
    fs, inner = resolve(kept_uri)
    tables = [pq.read_table(f"{inner}/{f}", columns=["id"], filesystem=fs) for f in files]
    return sorted(pa.concat_tables(tables).column("id").to_pylist())


def test_run_with_dedup_on_s3_writes_the_local_layout(tmp_path, s3_uri):
    """`dataengine run` with the shipped config (dedup on) from and to S3: OUT/phase1/, OUT/dedup/ and the
    final OUT/kept as a local run writes them, the same kept ids, planted copies rejected by dedup. Real
    English web text and Chinese Wikipedia from the bundled sample, run in process (small job)."""
    import gzip

    root = Path(__file__).resolve().parents[1]
    local_in = tmp_path / "in"
    local_in.mkdir()
    copies = []
    for name in ("en_web.jsonl.gz", "zh_wiki.jsonl.gz"):
        with gzip.open(root / "sample" / name, "rt", encoding="utf-8") as fh:
            rows = [json.loads(line) for _, line in zip(range(150), fh, strict=False)]
        (local_in / name.removesuffix(".gz")).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
        copies += [{**r, "id": f"copy-{r['id']}"} for r in rows[:10]]
    (local_in / "copies.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in copies), encoding="utf-8"
    )
    remote_in = upload(local_in, f"{s3_uri}/in")
    small = ["--set", "ray.executor=local", "--set", "dedup.executor=local", "--quiet"]
    config = str(root / "configs" / "pipeline.yaml")
    _invoke(["run", config, "-i", str(local_in), "-o", str(tmp_path / "out"), *small])
    _invoke(["run", config, "-i", remote_in, "-o", f"{s3_uri}/out", *small])

    run = json.loads(get_bytes(f"{s3_uri}/out/run.json"))
    assert run["output"]["kept"].rstrip("/") == f"{s3_uri}/out/kept"
    written = list_files(f"{s3_uri}/out")
    for folder in ("phase1/kept/", "phase1/rejected/", "dedup/rejected/", "kept/"):
        assert any(f.startswith(folder) and f.endswith(".parquet") for f in written), folder
    kept = _kept_ids(f"{s3_uri}/out/kept")
    assert kept == _kept_ids(str(tmp_path / "out" / "kept"))
    dropped = set(_kept_ids(f"{s3_uri}/out/dedup/rejected"))
    # every planted copy whose original phase 1 kept is a duplicate: one of each pair goes
    originals = {c["id"].removeprefix("copy-") for c in copies}
    phase1_kept = set(_kept_ids(f"{s3_uri}/out/phase1/kept"))
    pairs = [o for o in originals if o in phase1_kept]
    assert pairs and all((o in dropped) != (f"copy-{o}" in dropped) for o in pairs)
    assert not set(kept) & dropped
