"""The usage ledger (DESIGN §3.4): records, truncation on resume, runs that stay independent unless a
config names earlier runs to steer away from their data, one epoch = every sequence once, and the
`dataengine usage` commands."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pytest
from test_train_shards import run_ledger_steps, tiny_config, torch_one_thread, train_shards  # noqa: F401
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
    assert ledger.counts("ds1", [2, 2], ["b"]).tolist() == [1, 0, 0, 0]
    assert ledger.truncate("a", 1) == 3  # resume of run a from step 1
    assert ledger.counts("ds1", [2, 2]).tolist() == [2, 1, 0, 0]
    assert ledger.run_steps("a") == [(1, 0, 0), (1, 0, 1)]
    with pytest.raises(ValueError, match="run 'a' was recorded on dataset ds1"):
        ledger.register_run("a", "ds2")
    with pytest.raises(ValueError, match=r"sequence \(0, 0\) is not in dataset ds2"):
        ledger.counts("ds2", [0])
    ledger.close()


def test_runs_are_independent_unless_they_name_earlier_runs(train_shards, tmp_path):  # noqa: F811
    shards = tmp_path / "shards"
    shutil.copytree(train_shards, shards)
    shared = f"usage.ledger={shards / 'usage.sqlite'}"  # one file for all three runs: opt-in
    common = ("usage.decay=0.01", "train.max_steps=4", "checkpoint.interval=4", shared)
    first_losses = [r["loss"] for r in run(tiny_config(shards, tmp_path / "run1", *common))]
    second_losses = [r["loss"] for r in run(tiny_config(shards, tmp_path / "run2", *common))]
    named = f"usage.prior_runs=[{tmp_path / 'run1'}]"
    run(tiny_config(shards, tmp_path / "run3", *common, named))
    ledger = UsageLedger(shards)
    first, second, third = (
        ledger.run_steps(json.loads((tmp_path / name / "run.json").read_text())["run_id"])
        for name in ("run1", "run2", "run3")
    )
    ledger.close()
    # the same seed on the same shards: the same run, whoever trained before
    assert second == first and second_losses == first_losses and len(first) == 4 * 8
    used_by_first = {(s, r) for _, s, r in first}
    # run3 names run1: its epoch puts run1's data last (weight 0.01 per use)
    repeats = sum((s, r) in used_by_first for _, s, r in third)
    assert repeats <= 2, repeats

    cli = CliRunner()
    runs = json.loads(cli.invoke(usage_app, ["runs", str(shards), "--json"]).output)
    assert [r["sequences"] for r in runs] == [32, 32, 32] and [r["last_step"] for r in runs] == [4, 4, 4]

    reader = ShardReader(shards)
    expected: Counter[str] = Counter()
    for _, shard, row in first + second + third:
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
    wrong = cli.invoke(usage_app, ["runs", str(tmp_path / "nowhere")])
    assert wrong.exit_code != 0


def test_one_epoch_uses_every_sequence_once_and_the_run_keeps_its_own_ledger(train_shards, tmp_path):  # noqa: F811
    n = len(ShardReader(train_shards))
    steps = n // 8
    run(tiny_config(train_shards, tmp_path, f"train.max_steps={steps}", f"checkpoint.interval={steps}"))
    used = Counter((shard, row) for _, shard, row in run_ledger_steps(tmp_path))  # RUN/usage.sqlite
    assert max(used.values()) == 1 and len(used) == steps * 8 >= 0.96 * n  # all but the last partial batch
    ledger = UsageLedger(tmp_path)
    counts = ledger.counts(dataset_fingerprint(train_shards), ShardReader(train_shards).shard_sequences)
    ledger.close()
    assert counts.sum() == steps * 8 and set(np.unique(counts)) == {0, 1}
    result = CliRunner().invoke(usage_app, ["runs", str(tmp_path), "--json"])
    assert json.loads(result.output)[0]["sequences"] == steps * 8


def test_prior_runs_must_be_run_directories(train_shards, tmp_path):  # noqa: F811
    with pytest.raises(FileNotFoundError, match="is not a training run directory \\(no run.json\\)"):
        run(tiny_config(train_shards, tmp_path / "run", f"usage.prior_runs=[{tmp_path / 'nowhere'}]"))
