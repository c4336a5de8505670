"""Shared fixtures: the bundled real-text corpus, the full data folder, one local Ray instance.

Two tiers of real text:
* ``corpus``: ``tests/data/``, bundled with the project (subsets of ../shared/data under the same relative
  paths; origins and licenses in tests/data/NOTICE). The default suite reads only this.
* ``shared_data``: the full ``../shared/data`` beside the project. Tests that ask for it form the
  ``extended`` tier: marked ``extended`` automatically, run when the folder is there (CI), skipped with one
  reason on a bare clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# DATAENGINE_SHARED_DATA moves the extended tier's folder (a path that does not exist acts as a bare clone).
SHARED_DATA = Path(os.environ.get("DATAENGINE_SHARED_DATA", ROOT / ".." / "shared" / "data")).resolve()
CORPUS = ROOT / "tests" / "data"
EXTENDED_SKIP = (
    "extended tier: needs the full ../shared/data beside the project (CI has it, a bare clone does not)"
)


def pytest_collection_modifyitems(config, items) -> None:
    """Every test that uses ``shared_data`` belongs to the extended tier (``-m extended`` selects it)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.extended)


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The bundled real-text corpus (tests/data), laid out like ../shared/data."""
    return CORPUS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(EXTENDED_SKIP)
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
def zh_paragraphs(corpus) -> list[str]:
    """Every zh-Wikipedia paragraph of CMRC 2018."""
    from stage_corpora import cmrc_paragraphs

    return cmrc_paragraphs(corpus, min_chars=0)


@pytest.fixture(scope="session")
def c4_docs(corpus) -> list[str]:
    """The C4 English web documents of the bundled corpus."""
    from stage_corpora import english_web_docs

    return english_web_docs(corpus)["c4"]


# The local S3 server (moto): importing the module puts its endpoint and fake credentials into the
# environment now, before the session Ray instance starts, so Ray workers reach it too.
from s3_server import s3_server, s3_uri  # noqa: E402, F401
