"""Proxy experiments (python -m train.experiment): the grid runs real training and eval as Ray tasks,
resumes, and writes the table, the report and law fits checked against held-out runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_train_shards import TINY_YAML, torch_one_thread, train_shards  # noqa: F401

from dataengine.configio import ConfigError
from train.experiment.__main__ import exclusive, run_experiment
from train.experiment.config import load_experiment_config
from train.experiment.fits import recommended_runs
from train.experiment.grid import expand_runs

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {
    "model.dim": 16,
    "model.n_layers": 1,
    "model.n_heads": 2,
    "model.n_kv_heads": 1,
    "model.ffn_dim": 32,
}


def _weights(zh: float) -> dict:
    return {"data.channel_weights": {"zh": zh, "web": round(1 - zh, 2), "code": 0}}


def _write(tmp_path: Path, shards: Path, **extra) -> Path:
    config = {
        "output": str(tmp_path / "out"),
        "train": str(TINY_YAML),
        "set": {
            "data.shards": str(shards),
            "train.max_steps": 6,
            "train.log_interval": 1,
            "eval.interval": 2,
            "eval.sequences": 64,
            "checkpoint.interval": 3,
            "schedule.warmup_steps": 1,
            "metrics.tensorboard": False,
            **TINY_MODEL,
        },
        "eval_set": {"data.heldout": [str(shards)], "data.max_docs_per_domain": 4},
        "axes": {
            "ratio": {
                "zh20": _weights(0.2),
                "zh50": _weights(0.5),
                "zh80": _weights(0.8),
                "zh65": {"set": _weights(0.65), "fit": False},
            }
        },
        "fits": {
            "mixture": {"enabled": True, "domain": "zh", "general": "web", "bootstrap": 5, "verify": True}
        },
        **extra,
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.ray
def test_grid_trains_evaluates_resumes_and_fits(train_shards, tmp_path, ray_session):  # noqa: F811
    config = _write(tmp_path, train_shards)
    messages: list[str] = []
    result = run_experiment(config, log=messages.append)
    out = tmp_path / "out"
    table = pd.read_parquet(out / "experiments.parquet")
    mixture = result["fits"]["mixture"]
    recommended = round(mixture["recommended"]["ratio"], 2)
    # the recommendation is trained after the fit, unless it is one of the fitted ratios (then it was)
    verified = recommended not in (0.2, 0.5, 0.8)
    verify = [f"reczh{round(recommended * 100):02d}"] if verified else []
    assert table["run_id"].tolist() == ["zh20", "zh50", "zh80", "zh65", *verify]
    assert table["fit"].tolist() == [True, True, True, False, *[False] * len(verify)]
    assert ("verification" in mixture) == (not verified)
    assert (table["tokens"] == 6 * 8 * table["seq_len"]).all() and (table["steps"] == 6).all()
    assert table["ratio/zh"].round(2).tolist() == [0.2, 0.5, 0.8, 0.65, *[recommended] * len(verify)]
    for column in ("bpb/lang=zh", "bpb/lang=en", "heldout_loss/zh", "heldout_loss/web"):
        assert table[column].between(0.1, 20).all(), column  # real, finite numbers from the real eval
    curves = pd.read_parquet(out / "curves.parquet")
    assert set(curves.dropna(subset=["heldout_loss/zh"])["step"]) == {2, 4, 6}
    assert mixture["points"] == 9 and mixture["runs"] == 3  # 3 fit runs x 3 in-loop evaluations
    assert 0 <= mixture["recommended"]["ratio"] <= 0.8
    checks = {(c["run_id"], c["channel"]) for c in mixture["checks"]}
    assert checks == {(run, channel) for run in ("zh65", *verify) for channel in ("zh", "web")}  # held out
    held_out = table.set_index("run_id").loc["zh65"]
    zh_check = next(c for c in mixture["checks"] if c["channel"] == "zh" and c["run_id"] == "zh65")
    assert zh_check["dcpt"]["observed"] == pytest.approx(held_out["heldout_loss/zh"])
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Fit: mixture" in report and "mixture.png" in report and (out / "mixture.png").is_file()

    # finished runs are skipped; a lost result is recomputed from the run's final checkpoint, unchanged
    before = json.loads((out / "runs/zh50/result.json").read_text())
    (out / "runs/zh50/result.json").unlink()
    messages.clear()
    run_experiment(config, log=messages.append)
    assert "experiment: 4 runs, 3 finished, 1 to run" in messages
    if verified:  # the same fit, so the same verification, already finished
        assert "experiment: 5 runs, 5 finished, 0 to run" in messages
    after = json.loads((out / "runs/zh50/result.json").read_text())
    for key in ("tokens", "heldout_loss/zh", "bpb/lang=zh", "train_loss"):
        assert after[key] == pytest.approx(before[key], rel=1e-9), key


def test_prepare_steps_run_once_a_failure_names_the_step_and_one_command_per_output(train_shards, tmp_path):  # noqa: F811
    marker = tmp_path / "made.txt"
    make = f"python -c \"import pathlib; pathlib.Path(r'{marker}').write_text('x')\""
    config = _write(tmp_path, train_shards, prepare={"make": {"run": make, "creates": str(marker)}})
    messages: list[str] = []
    assert run_experiment(config, log=messages.append, prepare_only=True) is None
    assert marker.read_text() == "x" and any(m.startswith("prepare make: $") for m in messages)
    marker.write_text("kept")
    run_experiment(config, log=messages.append, prepare_only=True)
    assert marker.read_text() == "kept" and any("exists, skipped" in m for m in messages)

    with exclusive(tmp_path / "out" / "experiment.lock"):  # a second command on the same output is refused
        with pytest.raises(ConfigError, match="another train.experiment is running on it \\(pid "):
            run_experiment(config, prepare_only=True)

    broken = _write(
        tmp_path, train_shards, prepare={"broken": {"run": "python -c 'exit(3)'", "creates": "nope"}}
    )
    with pytest.raises(RuntimeError, match="prepare step broken failed \\(exit 3\\)"):
        run_experiment(broken, prepare_only=True)


def test_config_errors_name_the_run_and_the_key_and_overrides_reach_every_run(train_shards, tmp_path):  # noqa: F811
    bad = _write(tmp_path, train_shards, axes={"lr": {"fast": {"train.lr": -1}}})
    with pytest.raises(ConfigError, match="experiment run fast: .*train.lr"):
        expand_runs(load_experiment_config(bad))
    unknown = _write(tmp_path, train_shards, exclude=[{"ratio": "zh99"}])
    with pytest.raises(ConfigError, match="exclude: ratio='zh99' is not an axis label"):
        load_experiment_config(unknown)
    quick = load_experiment_config(
        _write(tmp_path, train_shards), ["set.train.max_steps=2", "cpus_per_run=2"]
    )
    assert {run.train.train.max_steps for run in expand_runs(quick)} == {2} and quick.cpus_per_run == 2
    label = _write(tmp_path, train_shards, axes={"ratio": {"a b": {"train.lr": 0.1}}})
    with pytest.raises(ConfigError, match="must be a plain name"):
        load_experiment_config(label)


RECIPES = sorted(p.name for p in (ROOT / "configs/experiments").glob("*.yaml") if p.name != "common.yaml")


def test_the_four_recipes_ship():
    assert RECIPES == ["cpt_ratio.yaml", "order.yaml", "raw_vs_processed.yaml", "scaling.yaml"]


@pytest.mark.parametrize("recipe", RECIPES)
def test_shipped_recipes_expand_and_read_bundled_inputs(recipe):
    cfg = load_experiment_config(ROOT / "configs/experiments" / recipe)
    runs = expand_runs(cfg)
    seeds = {run.train.train.seed for run in runs}
    assert len(seeds) >= 3  # every recipe reports a spread over at least three seeds
    assert any(not run.fit for run in runs) or not (cfg.fits.scaling.enabled or cfg.fits.mixture.enabled)
    for step in cfg.prepare.values():
        for word in step.run.split():
            if word.startswith("sample/"):
                assert (ROOT / word).is_file(), f"{recipe}: {word} is not in the bundled sample"


def test_recommended_ratio_runs_copy_a_fit_run_per_seed(train_shards, tmp_path):  # noqa: F811
    axes = {"ratio": {"zh20": _weights(0.2), "zh50": _weights(0.5)}, "train.seed": [0, 1]}
    cfg = load_experiment_config(_write(tmp_path, train_shards, axes=axes))
    runs = expand_runs(cfg)
    verify = recommended_runs(cfg, runs, {"recommended": {"ratio": 0.371}})
    assert [r.run_id for r in verify] == ["reczh37_0", "reczh37_1"] and not any(r.fit for r in verify)
    assert [r.train.train.seed for r in verify] == [0, 1]
    assert verify[0].train.data.channel_weights == {"zh": 0.37, "web": 0.63, "code": 0}
    assert verify[0].train.run_dir == str(tmp_path / "out/runs/reczh37_0/train")
    fitted = {"recommended": {"ratio": 0.5}}
    assert recommended_runs(cfg, runs, fitted) == [] and "is a fitted ratio" in fitted["verification"]
