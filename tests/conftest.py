"""Shared fixtures: the real data folder and one local Ray instance for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA} (../shared/data beside the project)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance with 2 CPUs, shared by every Ray test."""
    import ray

    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def zh_paragraphs(shared_data) -> list[str]:
    """Every zh-Wikipedia paragraph of CMRC 2018."""
    from stage_corpora import cmrc_paragraphs

    return cmrc_paragraphs(shared_data, min_chars=0)


@pytest.fixture(scope="session")
def c4_docs(shared_data) -> list[str]:
    """The C4 English web documents of the shared data."""
    from stage_corpora import english_web_docs

    return english_web_docs(shared_data)["c4"]
