"""The usage ledger (DESIGN §3.4): records, truncation on resume, counts shared across runs that
steer the sampler away from used data, and the `dataengine usage` commands."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
from test_train_shards import tiny_config, torch_one_thread, train_shards  # noqa: F401
from typer.testing import CliRunner

from dataengine.pack.shards import ShardReader
from dataengine.usage.cli import usage_app
from dataengine.usage.ledger import UsageLedger, dataset_fingerprint
from train.trainer import run


def test_record_truncate_and_counts(tmp_path):
    ledger = UsageLedger(tmp_path / "usage.sqlite")
    ledger.register_run("a", "ds1")
    ledger.register_run("b", "ds1")
    ledger.register_run("c", "ds2")
    ledger.record("a", [(1, [(0, 0), (0, 1)]), (2, [(1, 0), (0, 0)]), (3, [(1, 1)])])
    ledger.record("b", [(1, [(0, 0)])])
    ledger.record("c", [(1, [(0, 0)])])
    assert ledger.counts("ds1", [2, 2]).tolist() == [3, 1, 1, 1]
    assert ledger.truncate("a", 1) == 3  # resume of run a from step 1
    assert ledger.counts("ds1", [2, 2]).tolist() == [2, 1, 0, 0]
    assert ledger.run_steps("a") == [(1, 0, 0), (1, 0, 1)]
    with pytest.raises(ValueError, match="run 'a' was recorded on dataset ds1"):
        ledger.register_run("a", "ds2")
    with pytest.raises(ValueError, match=r"sequence \(0, 0\) is not in dataset ds2"):
        ledger.counts("ds2", [0])
    ledger.close()


def test_runs_share_the_ledger_and_the_cli_reports_it(train_shards, tmp_path):  # noqa: F811
    shards = tmp_path / "shards"
    shutil.copytree(train_shards, shards)
    common = ("usage.decay=0.01", "train.max_steps=4", "checkpoint.interval=4")
    run(tiny_config(shards, tmp_path / "run1", "usage.ledger=null", *common))
    run(tiny_config(shards, tmp_path / "run2", "usage.ledger=null", *common))
    ledger = UsageLedger(shards)  # the default: SHARDS/usage.sqlite
    first = ledger.run_steps(str((tmp_path / "run1").resolve()))
    second = ledger.run_steps(str((tmp_path / "run2").resolve()))
    ledger.close()
    assert len(first) == len(second) == 4 * 8
    used_by_first = {(s, r) for _, s, r in first}
    # decay 0.01 per use: the second run draws almost only sequences the first did not see
    repeats = sum((s, r) in used_by_first for _, s, r in second)
    assert repeats <= 2, repeats

    cli = CliRunner()
    runs = json.loads(cli.invoke(usage_app, ["runs", str(shards), "--json"]).output)
    assert [r["sequences"] for r in runs] == [32, 32] and [r["last_step"] for r in runs] == [4, 4]

    reader = ShardReader(shards)
    expected: Counter[str] = Counter()
    for _, shard, row in first + second:
        for span in reader.spans(shard, row):
            expected[span["channel"]] += span["end"] - span["start"]
    result = cli.invoke(usage_app, ["channels", str(shards), "--json"])
    assert result.exit_code == 0, result.output
    channels = {r["channel"]: r for r in json.loads(result.output)}
    assert {c: r["tokens_used"] for c, r in channels.items() if r["tokens_used"]} == dict(expected)
    assert set(channels) == {"web", "zh", "code"}
    docs = json.loads(cli.invoke(usage_app, ["documents", str(shards), "--json", "--top", "0"]).output)
    assert sum(d["tokens_used"] for d in docs) == sum(expected.values())
    assert docs[0]["epochs"] >= docs[-1]["epochs"] and any(d["doc_id"].startswith("zhwiki-") for d in docs)
    table = cli.invoke(usage_app, ["documents", str(shards), "--top", "3"])
    assert table.exit_code == 0 and "usage per document" in table.output
    missing = cli.invoke(usage_app, ["channels", str(train_shards / "train")])
    assert missing.exit_code != 0 and "no usage ledger" in missing.output


def test_counts_match_between_ledger_and_sampler_state(train_shards, tmp_path):  # noqa: F811
    """The use counts a checkpoint saves equal the ledger's counts for that run."""
    run(tiny_config(train_shards, tmp_path, "train.max_steps=6"))
    ledger = UsageLedger(tmp_path / "usage.sqlite")
    reader = ShardReader(train_shards)
    from_ledger = ledger.counts(dataset_fingerprint(train_shards), reader.shard_sequences)
    ledger.close()
    saved = np.load(tmp_path / "checkpoints/step-0000006/sampler.npy")
    assert from_ledger.tolist() == saved.tolist() and saved.sum() == 6 * 8
