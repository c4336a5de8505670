"""`dataengine dedup` reads every input format through `dataengine run`'s planner, readers and id rule.

Real English (C4) and Chinese (zh-Wikipedia, CMRC 2018) documents from the bundled corpus, with planted
exact and near duplicates, in JSONL files without ids plus malformed lines; and a mixed call with a
phase-1-style Parquet folder (used as it is) next to a JSONL file (staged).
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from dataengine.dedup.cli import DEDUP_EPILOG, dedup_command
from dataengine.io.config import InputConfig
from dataengine.io.paths import expand_inputs
from dataengine.io.readers import read_unit
from dataengine.io.units import plan_units

pytestmark = pytest.mark.ray

# Lines `dataengine run` rejects while reading (FIELD: the text field), with the reason its readers give.
MALFORMED = [
    ('{"FIELD": "an unterminated string', "io:invalid_json"),
    ("not json at all", "io:invalid_json"),
    ('{"FIELD": "   "}', "io:empty"),
    ('{"body": "the text under another name"}', "io:missing_text"),
    ('{"FIELD": 42}', "io:non_string_text"),
]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("dedup", epilog=DEDUP_EPILOG)(dedup_command)
    app.command("noop")(lambda: None)
    return app


def _near(text: str, rate: float, rng: random.Random, cjk: bool) -> str:
    """``text`` with a share ``rate`` of its characters (zh) or words (en) deleted, at least one."""
    units = list(text) if cjk else text.split(" ")
    gone = set(rng.sample(range(len(units)), max(1, round(rate * len(units)))))
    return ("" if cjk else " ").join(u for i, u in enumerate(units) if i not in gone)


def _rows(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def _run_rows(path: Path, reader: InputConfig) -> list[dict]:
    """Every row `dataengine run`'s planner and readers give for ``path`` (rejected ones included)."""
    return [row for unit in plan_units(expand_inputs([str(path)]), reader) for row in read_unit(unit, reader)]


@pytest.fixture(scope="module")
def real_docs(corpus) -> tuple[list[str], list[str]]:
    en = []
    for part in ("01", "02", "03"):
        with gzip.open(corpus / "web" / "text" / f"c4-sample.{part}.jsonl.gz", "rt", encoding="utf-8") as fh:
            en += [t for t in (json.loads(line)["text"] for line in fh) if len(t) >= 500]
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        zh = [t for t in (json.loads(line)["text"] for line in fh) if len(t) >= 300][:20]
    assert len(en) >= 20 and len(zh) == 20
    return en, zh


def _planted(en: list[str], zh: list[str], field: str = "text") -> tuple[list[str], list[tuple]]:
    """JSONL lines (originals first, then planted copies and malformed lines, no ids) and what each line
    is: ("doc", None, None) | ("dup", reason, index of its original line) | ("bad", io reason, None)."""
    rng = random.Random(11)
    lines, kinds = [], []
    for t in en + zh:
        lines.append(json.dumps({field: t}, ensure_ascii=False))
        kinds.append(("doc", None, None))
    planted = [(i, "  " + en[i].upper() + " ", "dedup:exact") for i in range(4)]
    planted += [(i, _near(en[i], 0.01, rng, False), "dedup:minhash") for i in range(4, 9)]
    planted += [(len(en) + 5, " " + zh[5] + "\n", "dedup:exact")]
    planted += [(len(en) + i, _near(zh[i], 0.01, rng, True), "dedup:minhash") for i in range(5)]
    extra = [(json.dumps({field: t}, ensure_ascii=False), ("dup", reason, i)) for i, t, reason in planted]
    extra += [(line.replace("FIELD", field), ("bad", reason, None)) for line, reason in MALFORMED]
    rng.shuffle(extra)
    for line, kind in extra:
        lines.append(line)
        kinds.append(kind)
    return lines, kinds


def _check(out: Path, run_rows: list[dict], kinds: list[tuple], ids_kept_elsewhere=frozenset()) -> None:
    """kept/ and rejected/ against the rows `dataengine run` reads and what each line was planted as."""
    kept, rejected = _rows(out / "kept"), _rows(out / "rejected")
    by_id = {r["id"]: r for r in kept + rejected}
    assert len(by_id) == len(kept) + len(rejected), "every row once"
    for row, (kind, reason, original) in zip(run_rows, kinds, strict=True):
        got = by_id[row["id"]]
        assert got["source"] == row["source"]
        if kind == "doc":
            assert got.get("reject") is None and got["text"] == row["text"], row["source"]
        elif kind == "dup":
            assert got["reject"] == reason, row["source"]
            assert got["duplicate_of"] == run_rows[original]["id"]
        else:
            assert row["reject"] == reason and got["reject"] == reason and got["duplicate_of"] is None
    assert set(r["id"] for r in kept) - ids_kept_elsewhere == {
        r["id"] for r, k in zip(run_rows, kinds, strict=True) if k[0] == "doc"
    }


def test_jsonl_without_ids_dedups_with_run_ids_and_keeps_malformed_lines_as_rejected(
    ray_session, real_docs, tmp_path
):
    en, zh = real_docs
    lines, kinds = _planted(en, zh)
    src = tmp_path / "web.jsonl"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(_app(), ["dedup", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 0, result.output

    run_rows = _run_rows(src, InputConfig())
    assert len(run_rows) == len(lines)
    _check(out, run_rows, kinds)
    run = json.loads((out / "run.json").read_text())
    bad = {reason: sum(1 for _, r in MALFORMED if r == reason) for _, reason in MALFORMED}
    assert run["rejected_by_reason"] == {"dedup:exact": 5, "dedup:minhash": 10, **bad}
    assert run["input"] == len(lines) == run["kept"] + run["rejected"]
    assert run["kept"] == len(en) + len(zh)
    assert run["staged"] == {"units": 1, "documents": len(lines) - len(MALFORMED), "rejected": len(MALFORMED)}
    assert not (out / "_staged").exists(), "staged files are removed when the run completes"
    zh_kept = [r for r in _rows(out / "kept") if r["text"] in set(zh)]
    assert len(zh_kept) == len(zh)


def test_phase1_parquet_folder_is_used_as_is_next_to_a_staged_jsonl(ray_session, real_docs, tmp_path):
    """One call: a phase-1-style Parquet folder (id/text/lang/quality) and a .jsonl.gz whose text lies under
    `content` (--set input.text_field=content): the Parquet stays as it is, the JSONL is read as run reads
    it, and copies of Parquet documents in the JSONL are rejected in favour of them."""
    en, zh = real_docs
    folder = tmp_path / "kept"
    folder.mkdir()
    phase1 = [
        {"id": f"p{i}", "text": t, "source": f"raw.jsonl@{i}", "lang": "en", "quality": 0.9}
        for i, t in enumerate(en[15:])
    ]
    phase1 += [
        {"id": f"q{i}", "text": t, "source": f"zh.jsonl@{i}", "lang": "zh", "quality": 0.9}
        for i, t in enumerate(zh[10:20])
    ]
    pq.write_table(pa.Table.from_pylist(phase1[:10]), folder / "part-00000.parquet")
    pq.write_table(pa.Table.from_pylist(phase1[10:]), folder / "part-00001.parquet")
    lines, kinds = _planted(en[:15], zh[:10], field="content")
    rng = random.Random(3)
    # copies of phase-1 documents: the Parquet rows come first in plan order and survive
    cross = [
        ("  " + en[15].upper(), "dedup:exact", "p0"),
        (_near(en[16], 0.01, rng, False), "dedup:minhash", "p1"),
    ]
    cross.append((_near(zh[12], 0.01, rng, True), "dedup:minhash", "q2"))
    lines += [json.dumps({"content": t}, ensure_ascii=False) for t, _, _ in cross]
    src = tmp_path / "web.jsonl.gz"
    with gzip.open(src, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["dedup", "-i", str(folder), "-i", str(src), "-o", str(out), "--set", "input.text_field=content"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output

    run_rows = _run_rows(src, InputConfig(text_field="content"))
    assert len(run_rows) == len(lines)
    _check(out, run_rows[: len(kinds)], kinds, ids_kept_elsewhere={r["id"] for r in phase1})
    by_id = {r["id"]: r for r in _rows(out / "kept") + _rows(out / "rejected")}
    for row, (_, reason, original) in zip(run_rows[len(kinds) :], cross, strict=True):
        assert by_id[row["id"]]["reject"] == reason and by_id[row["id"]]["duplicate_of"] == original
    for r in phase1:  # used as it is: every column kept, original source and quality included
        got = by_id[r["id"]]
        assert got.get("reject") is None and {k: got[k] for k in r} == r
    run = json.loads((out / "run.json").read_text())
    assert run["input"] == len(phase1) + len(lines) == run["kept"] + run["rejected"]
    assert run["kept"] == len(phase1) + 15 + 10
    assert run["staged"]["units"] == 1 and run["staged"]["rejected"] == len(MALFORMED)
    assert run["rejected_by_reason"]["dedup:exact"] == 5 + 1
    assert run["rejected_by_reason"]["dedup:minhash"] == 10 + 2


def test_input_of_only_malformed_records_is_all_rejected_and_counted(tmp_path):
    """Nothing to dedup (no Ray passes): every record is in rejected/ with its io reason and source."""
    src = tmp_path / "bad.jsonl"
    src.write_text("\n".join(line.replace("FIELD", "text") for line, _ in MALFORMED) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(_app(), ["dedup", "-i", str(src), "-o", str(out)])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["input"] == run["rejected"] == len(MALFORMED) and run["kept"] == 0
    rejected = _rows(out / "rejected")
    assert [(r["reject"], r["source"]) for r in rejected] == [
        (r["reject"], r["source"]) for r in _run_rows(src, InputConfig())
    ]
    assert [r["reject"] for r in rejected] == [reason for _, reason in MALFORMED]
    assert _rows(out / "kept") == []


def test_missing_input_fails_before_any_work_naming_the_path(real_docs, tmp_path):
    src = tmp_path / "web.jsonl"
    src.write_text(json.dumps({"text": real_docs[0][0]}) + "\n", encoding="utf-8")
    missing = tmp_path / "nowhere" / "web.jsonl.zst"
    out = tmp_path / "out"
    result = CliRunner().invoke(_app(), ["dedup", "-i", str(src), "-i", str(missing), "-o", str(out)])
    assert result.exit_code == 2 and str(missing) in result.output
    assert not out.exists()
    odd = tmp_path / "notes.docx"
    odd.write_bytes(b"PK")
    result = CliRunner().invoke(_app(), ["dedup", "-i", str(odd), "-o", str(out)])
    assert result.exit_code == 2 and "notes.docx" in result.output and "input.format" in result.output
    assert not out.exists()


def test_help_lists_the_input_keys():
    result = CliRunner().invoke(_app(), ["dedup", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for key in ('input.text_field = "text"', 'input.format = "auto"', "input.carry_fields"):
        assert key in result.output, key
