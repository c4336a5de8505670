"""Input expansion (files, directories, globs, URIs), format inference and work-unit planning."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import asdict
from pathlib import Path

import pydantic
import pytest

from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs, resolve
from dataengine.io.units import Unit, infer_format, plan_units

SAMPLE = Path(__file__).resolve().parents[1] / "sample"


@pytest.fixture
def tree(tmp_path: Path, corpus: Path) -> Path:
    """A small input tree of real files, with bookkeeping files that must be skipped."""
    (tmp_path / "web" / "deep").mkdir(parents=True)
    shutil.copy(corpus / "web/text/c4-sample.01.jsonl.gz", tmp_path / "web")
    shutil.copy(corpus / "web/text/c4-sample.02.jsonl.gz", tmp_path / "web/deep")
    shutil.copy(SAMPLE / "web_pages.warc.gz", tmp_path / "web/deep")
    shutil.copy(corpus / "zh/cmrc2018_zhwiki_contexts.jsonl", tmp_path)
    (tmp_path / "web/_SUCCESS").write_text("")
    (tmp_path / "web/.hidden.jsonl").write_text("{}\n")
    return tmp_path


def test_directories_globs_and_uris(tree: Path):
    expected = sorted(
        str(tree / p)
        for p in ["web/c4-sample.01.jsonl.gz", "web/deep/c4-sample.02.jsonl.gz", "web/deep/web_pages.warc.gz"]
    )
    assert expand_inputs([str(tree / "web")]) == expected
    assert expand_inputs([str(tree / "web/**/*.gz")]) == expected
    assert expand_inputs([f"file://{tree}/web"]) == expected
    assert expand_inputs([f"file://{tree}/web/*/*.warc.gz"]) == [str(tree / "web/deep/web_pages.warc.gz")]
    # overlapping entries and a relative spelling collapse to one sorted list
    both = expand_inputs([str(tree / "web"), str(tree / "web/c4-sample.01.jsonl.gz"), str(tree)])
    assert both == sorted([*expected, str(tree / "cmrc2018_zhwiki_contexts.jsonl")])


def test_missing_inputs_are_named(tree: Path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        expand_inputs([str(tree / "nothing_here.jsonl")])
    with pytest.raises(FileNotFoundError, match=r"\*\.parquet"):
        expand_inputs([str(tree / "*.parquet")])
    with pytest.raises(FileNotFoundError, match="nope"):
        expand_inputs([f"file://{tree}/nope"])
    with pytest.raises(TypeError):
        expand_inputs(str(tree))


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("a.jsonl", "jsonl"),
        ("a.JSON.gz", "jsonl"),
        ("a.ndjson.zst", "jsonl"),
        ("s3://b/x/part-0.parquet", "parquet"),
        ("book.txt.gz", "text"),
        ("README.md", "text"),
        ("crawl.warc.gz", "warc"),
        ("crawl.warc", "warc"),
        ("old.arc.gz", "arc"),
    ],
)
def test_infer_format(name, fmt):
    assert infer_format(name) == fmt


@pytest.mark.parametrize("name", ["data.csv", "noext", "a.parquet.gz", "a.arc.zst"])
def test_unknown_format_is_a_clear_error(name):
    with pytest.raises(ValueError, match="input.format"):
        infer_format(name)


def test_config_rejects_unknown_keys_and_bad_values():
    with pytest.raises(pydantic.ValidationError, match="text_feild"):
        InputConfig(text_feild="x")
    with pytest.raises(pydantic.ValidationError, match="format"):
        InputConfig(format="csv")
    with pytest.raises(pydantic.ValidationError, match="max_doc_bytes"):
        InputConfig(max_doc_bytes=0)


def test_unit_ids_are_stable_and_distinct(tree: Path):
    files = expand_inputs([str(tree)])
    cfg = InputConfig(unit_bytes=100_000)
    first, again = plan_units(files, cfg), plan_units(files, cfg)
    assert [u.unit_id for u in first] == [u.unit_id for u in again]
    assert len({u.unit_id for u in first}) == len(first)
    assert Unit("a.jsonl", "jsonl", 0, 10).unit_id == Unit("a.jsonl", "jsonl", 0, 10).unit_id
    assert Unit("a.jsonl", "jsonl", 0, 10).unit_id != Unit("a.jsonl", "jsonl", 10, None).unit_id
    # units travel to Ray workers, pickled or as JSON of their fields
    assert pickle.loads(pickle.dumps(first[0])) == first[0]
    assert Unit(**json.loads(json.dumps(asdict(first[-1])))) == first[-1]
    with pytest.raises(ValueError, match="does not belong"):
        Unit(**{**asdict(first[-1]), "start": 1})


def test_only_uncompressed_line_files_are_split(tree: Path):
    files = expand_inputs([str(tree)])
    units = plan_units(files, InputConfig(unit_bytes=100_000))
    by_file: dict[str, list[Unit]] = {}
    for u in units:
        by_file.setdefault(Path(u.path).name, []).append(u)
    assert len(by_file["c4-sample.01.jsonl.gz"]) == 1
    assert len(by_file["web_pages.warc.gz"]) == 1
    zh = by_file["cmrc2018_zhwiki_contexts.jsonl"]
    data = (tree / "cmrc2018_zhwiki_contexts.jsonl").read_bytes()
    assert abs(len(zh) - len(data) / 100_000) <= 1  # ~100 kB pieces
    assert zh[0].start == 0 and zh[-1].end is None
    for a, b in zip(zh, zh[1:], strict=False):
        assert a.end == b.start and data[b.start - 1 : b.start] == b"\n"  # cut at a line start


def test_bucket_uris_share_one_filesystem():
    """gs:// and s3:// paths map to 'bucket/key' on one cached filesystem per bucket (no I/O here)."""
    fs_a, inner_a = resolve("gs://some-bucket/crawl/a.warc.gz")
    fs_b, inner_b = resolve("gs://some-bucket/crawl/b.warc.gz")
    assert (inner_a, inner_b) == ("some-bucket/crawl/a.warc.gz", "some-bucket/crawl/b.warc.gz")
    assert fs_a is fs_b and fs_a.type_name == "gcs"
    assert resolve("file:///tmp/x.jsonl")[1] == "/tmp/x.jsonl"
