"""The pipeline config is validated once, before any work, with errors naming file, key and expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataengine.config import PipelineConfig, load_pipeline_config
from dataengine.configio import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_pipeline_config_validates():
    cfg = load_pipeline_config(ROOT / "configs" / "pipeline.yaml")
    assert cfg.stages.langid is not None
    assert cfg.stages.langid.thresholds["zh"] == 0.5


def test_defaults_run_without_a_file():
    cfg = load_pipeline_config(None)
    assert cfg == PipelineConfig()


def test_set_overrides_nested_keys_and_disables_stages():
    cfg = load_pipeline_config(
        ROOT / "configs" / "pipeline.yaml",
        ["stages.langid.threshold=0.3", "stages.pii=null", "ray.batch_size=17", "inputs=[a.jsonl, b.jsonl]"],
    )
    assert cfg.stages.langid.threshold == 0.3
    assert cfg.stages.pii is None
    assert cfg.ray.batch_size == 17
    assert cfg.inputs == ["a.jsonl", "b.jsonl"]


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stages:\n  langid:\n    treshold: 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "stages.langid.treshold" in message and "unknown key" in message


def test_bad_value_says_what_was_expected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ray:\n  batch_size: lots\n")
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    assert "ray.batch_size" in str(err.value)
    assert "integer" in str(err.value)


def test_unknown_key_from_set_is_reported_as_such():
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(None, ["stages.nope.x=1"])
    assert "--set stages.nope.x=1" in str(err.value)
    assert "stages.nope" in str(err.value)


def test_malformed_set_and_missing_file():
    with pytest.raises(ConfigError, match="key=value"):
        load_pipeline_config(None, ["no-equals-sign"])
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline_config("/nonexistent/pipeline.yaml")


def test_shipped_config_is_found_from_any_directory(tmp_path, monkeypatch):
    """A plain clone or a wheel install: the README's `configs/pipeline.yaml` works outside the checkout."""
    shipped = load_pipeline_config(ROOT / "configs" / "pipeline.yaml")
    monkeypatch.chdir(tmp_path)
    for spelling in ("configs/pipeline.yaml", "pipeline.yaml", "pipeline"):
        assert load_pipeline_config(spelling) == shipped, spelling
    # a file of that name in the current directory wins over the shipped one
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "pipeline.yaml").write_text("ray:\n  batch_size: 17\n")
    assert load_pipeline_config("configs/pipeline.yaml").ray.batch_size == 17
    with pytest.raises(ConfigError, match="configs/no_such_pipeline.yaml.*not found"):
        load_pipeline_config("configs/no_such_pipeline.yaml")


def test_init_copies_the_shipped_configs_and_keeps_edits(tmp_path, monkeypatch):
    """`dataengine init` writes editable copies; a second call never overwrites a user's edit."""
    from typer.testing import CliRunner

    from dataengine.cli import app
    from dataengine.configio import CONFIG_DIR

    monkeypatch.chdir(tmp_path)
    shipped = sorted(p.relative_to(CONFIG_DIR) for p in CONFIG_DIR.rglob("*.yaml"))
    assert Path("pipeline.yaml") in shipped and Path("train/tiny.yaml") in shipped
    first = CliRunner().invoke(app, ["init", "proj"])
    assert first.exit_code == 0, first.output
    copies = sorted(p.relative_to(tmp_path / "proj" / "configs") for p in (tmp_path / "proj").rglob("*.yaml"))
    assert copies == shipped
    edited = tmp_path / "proj" / "configs" / "pipeline.yaml"
    edited.write_text("output: mine/\n", encoding="utf-8")
    again = CliRunner().invoke(app, ["init", "proj"])
    assert again.exit_code == 0 and f"kept {len(shipped)} existing" in again.output
    assert load_pipeline_config(edited).output == "mine/"
    monkeypatch.chdir(tmp_path / "proj")  # the local copy now wins over the shipped one
    assert load_pipeline_config("configs/pipeline.yaml").output == "mine/"


@pytest.mark.parametrize(
    ("module", "keys"),
    [
        ("dataengine.cli", ["run", "--help"]),
        ("train.__main__", ["--help"]),
        ("eval.__main__", ["--help"]),
    ],
)
def test_help_lists_config_keys_with_the_models_defaults(module, keys):
    """`--help` is generated from the pydantic model, so it shows the defaults a run really gets."""
    import importlib

    from typer.testing import CliRunner

    from dataengine.cli_support import config_keys

    app = importlib.import_module(module).app
    result = CliRunner().invoke(app, keys, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    model = {
        "dataengine.cli": "dataengine.config:PipelineConfig",
        "train.__main__": "train.config:TrainConfig",
        "eval.__main__": "eval.config:EvalConfig",
    }[module]
    mod, _, name = model.partition(":")
    rows = list(config_keys(getattr(importlib.import_module(mod), name)))
    assert len(rows) > 10
    shown = " ".join(result.output.split())  # rich wraps long lines
    for key, default, _ in rows:
        assert " ".join(f"{key} = {default}".split()) in shown
