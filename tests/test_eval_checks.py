"""Inputs checked before any work: the shipped eval configs validate from any directory on the bundled
eval/data alone; a missing haystack, benchmark file, held-out path, probe file, record file or checkpoint
fails before the model is loaded, with every problem listed by config key and path (exit status 2, no
traceback); the trainer checks its in-loop eval config when its own config is loaded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dataengine.configio import ConfigError
from eval.__main__ import app
from eval.checks import MODEL_PARTS, enabled_parts, input_problems, require_inputs
from eval.config import CONFIG_DIR, PACKAGED_DATA, EvalConfig, load_eval_config

QUICK = "configs/eval/quick.yaml"
DEFAULT = "configs/eval/default.yaml"


def _broken_hf_dir(path: Path) -> Path:
    """Looks like a Hugging Face model directory, but its weights are not a safetensors file: loading it
    would fail with a safetensors error, so a clean config error proves the model was never loaded."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    (path / "model.safetensors").write_bytes(b"not a safetensors file")
    return path


def _partial_data_dir(path: Path) -> Path:
    """A data_dir with the needle haystacks but none of the benchmark files."""
    for relative in ("reference/wikitext-2_valid.txt", "zh/cmrc2018_zhwiki_contexts.jsonl"):
        (path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGED_DATA / relative, path / relative)
    return path


@pytest.mark.parametrize("name", ["default", "quick", "inloop"])
def test_shipped_configs_validate_from_another_directory_on_bundled_data(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ here: the shipped config of that name is read
    cfg = load_eval_config(f"configs/eval/{name}.yaml")
    assert input_problems(cfg, MODEL_PARTS) == []
    assert cfg.data_root() == PACKAGED_DATA
    assert all(cfg.resolve(p).is_relative_to(PACKAGED_DATA) for p in cfg.data.heldout)
    assert [cfg.resolve(p) for p in cfg.probes.files] == [CONFIG_DIR / "eval" / "probes.yaml"]
    haystacks = [cfg.resolve_data(p) for paths in cfg.needle.haystack.values() for p in paths]
    assert haystacks and all(path.is_file() for path in haystacks)


def test_missing_inputs_fail_before_any_model_load_all_listed(tmp_path):
    checkpoint = _broken_hf_dir(tmp_path / "model")
    data_dir = _partial_data_dir(tmp_path / "data")
    out = tmp_path / "out"
    (tmp_path / "not_shards").mkdir()
    result = CliRunner().invoke(
        app,
        [
            QUICK,
            "--checkpoint",
            str(checkpoint),
            "--output",
            str(out),
            "--set",
            f"data_dir={data_dir}",
            "--set",
            f"data.heldout=[{tmp_path / 'heldout.jsonl'},{tmp_path / 'not_shards'}]",
            "--set",
            "needle.haystack.en=[reference/wikitext-103.txt]",
            "--set",
            "multiple_choice.tasks=[piqa,hellaswag]",
            "--set",
            f"probes.files=[{tmp_path / 'probes.yaml'}]",
            "--set",
            f"scaling.records={tmp_path / 'runs.jsonl'}",
        ],
    )
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not a traceback
    assert "7 missing or unusable input(s), nothing was run" in result.output
    lines = result.output.replace("\n  ", "\n\t").split("\n\t")  # one problem per line, key first
    expected = {
        "data.heldout[0]": tmp_path / "heldout.jsonl",
        "data.heldout[1]": tmp_path / "not_shards",
        "needle.haystack.en[0]": data_dir / "reference" / "wikitext-103.txt",
        "probes.files[0]": tmp_path / "probes.yaml",
        "scaling.records": tmp_path / "runs.jsonl",
    }
    for key, path in expected.items():
        assert any(line.startswith(f"{key}: {path}") for line in lines), (key, result.output)
    for task, relative in (("piqa", "piqa_plain_text_validation"), ("hellaswag", "hellaswag_val")):
        assert any(line.startswith(f"multiple_choice.tasks: {task} needs {data_dir}") for line in lines)
        assert relative in result.output
    assert "manifest.json" in result.output  # why a plain directory is not held-out data
    assert not out.exists()  # nothing was written


def test_python_m_eval_fails_in_seconds_without_a_traceback_from_any_directory(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "eval"]
    assert subprocess.run([*command, "--help"], cwd=tmp_path, capture_output=True, env=env).returncode == 0
    start = time.perf_counter()
    run = subprocess.run(
        [*command, QUICK, "--checkpoint", str(tmp_path / "run"), "--output", str(tmp_path / "out"),
         "--set", "needle.haystack.zh=[zh/missing.jsonl]"],
        cwd=tmp_path, capture_output=True, text=True, env=env,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"--checkpoint: {tmp_path / 'run'} does not exist" in run.stderr
    assert f"needle.haystack.zh[0]: {PACKAGED_DATA / 'zh' / 'missing.jsonl'} does not exist" in run.stderr
    assert elapsed < 15  # about a second: no torch import, no model (loose bound for a busy machine)


def test_shards_without_a_heldout_split_and_unknown_placeholders_are_named(tmp_path):
    from dataengine.pack.shards import ShardWriter

    shards = tmp_path / "shards"
    shards.mkdir()
    writer = ShardWriter(
        shards, "train", 8, "uint16", vocab_size=100, pad_id=0, eos_id=0, tokenizer_sha256="t"
    )
    writer.write_row(np.arange(9), [{"start": 0, "end": 9, "doc_id": "d", "channel": "web", "lang": "en",
                                     "source": "test"}])  # fmt: skip
    writer.close()
    cfg = load_eval_config(
        DEFAULT, [f"data.heldout=[{shards}]", 'probes.files=["{project}/configs/eval/probes.yaml"]']
    )
    problems = input_problems(cfg, MODEL_PARTS)
    assert problems == [
        f"data.heldout[0]: {shards} has no 'heldout' split (data.split; it has ['train'])",
        "probes.files[0]: unknown placeholder {project} in '{project}/configs/eval/probes.yaml' "
        "(known: {configs}, {data_dir})",
    ]
    train_split = load_eval_config(DEFAULT, [f"data.heldout=[{shards}]", "data.split=train"])
    assert input_problems(train_split, MODEL_PARTS) == [
        f"data.heldout[0]: {shards} has no tokenizer.json (needed to decode the shards)"
    ]


def test_the_old_shared_data_key_is_an_unknown_key():
    with pytest.raises(ConfigError, match=r"shared_data: unknown key"):
        load_eval_config(DEFAULT, ["shared_data=../shared/data"])


def test_without_a_checkpoint_only_the_record_inputs_count(tmp_path):
    cfg = EvalConfig(needle={"haystack": {"en": ["missing.txt"]}})
    assert enabled_parts(cfg, None) == []
    require_inputs(cfg, None)  # the model parts do not run, so their inputs are not needed
    assert "needle" in enabled_parts(cfg, tmp_path)
    with pytest.raises(ConfigError, match=r"needle\.haystack\.en\[0\]: .*missing\.txt does not exist"):
        require_inputs(cfg, tmp_path / "model")
    records = EvalConfig(mixture={"records": str(tmp_path / "mix.jsonl")})
    with pytest.raises(ConfigError, match=r"mixture\.records: .*mix\.jsonl does not exist"):
        require_inputs(records, None)


def test_a_disabled_part_needs_no_inputs(tmp_path):
    checkpoint = _broken_hf_dir(tmp_path / "model")
    cfg = load_eval_config(DEFAULT, ["needle.enabled=false", "needle.haystack.en=[missing.txt]"])
    require_inputs(cfg, checkpoint)


def test_trainer_checks_its_in_loop_eval_config_when_its_config_is_loaded(tmp_path):
    from train.config import load_train_config

    bad = tmp_path / "inloop.yaml"
    bad.write_text(
        f"data:\n  heldout: [{tmp_path / 'held.jsonl'}]\nprobes:\n  files: [{tmp_path / 'probes.yaml'}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_train_config("configs/train/tiny.yaml", ["eval.interval=10", f"eval.hook={bad}"])
    message = str(caught.value)
    assert "eval.hook" in message and str(bad) in message
    assert f"data.heldout[0]: {tmp_path / 'held.jsonl'} does not exist" in message
    assert f"probes.files[0]: {tmp_path / 'probes.yaml'} does not exist" in message
    load_train_config("configs/train/tiny.yaml", ["eval.interval=0", f"eval.hook={bad}"])  # never runs
    shipped = load_train_config(
        "configs/train/tiny.yaml", ["eval.interval=10", "eval.hook=configs/eval/inloop.yaml"]
    )
    assert shipped.eval.hook == "configs/eval/inloop.yaml"


def test_check_only_mode_needs_no_checkpoint_or_output(tmp_path, monkeypatch):
    """`--check` (what the demo runs before any work) checks every enabled part's inputs, model or not."""
    monkeypatch.chdir(tmp_path)
    ok = CliRunner().invoke(app, [QUICK, "--check"])
    assert ok.exit_code == 0 and "config and inputs OK" in ok.output, ok.output
    bad = CliRunner().invoke(app, [QUICK, "--check", "--set", "needle.haystack.en=[reference/missing.txt]"])
    assert bad.exit_code == 2 and isinstance(bad.exception, SystemExit)
    assert (
        f"needle.haystack.en[0]: {PACKAGED_DATA / 'reference' / 'missing.txt'} does not exist" in bad.output
    )
    assert not list(tmp_path.iterdir())  # nothing written
    no_output = CliRunner().invoke(app, [QUICK])
    assert no_output.exit_code == 2 and "--output DIR is required" in no_output.output
