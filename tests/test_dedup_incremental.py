"""The persistent LSH index finds re-ingested documents: local file backend and a real Redis server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dataengine.dedup.config import IncrementalConfig, MinHashConfig
from dataengine.dedup.incremental import IncrementalIndex
from dataengine.dedup.minhash import minhash_signatures

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def batches(corpus) -> tuple[list[str], list[str]]:
    with open(corpus / "web" / "text" / "ewt_web_docs.jsonl", encoding="utf-8") as fh:
        en = [t for t in (json.loads(line)["text"] for line in fh) if len(t) >= 500][:40]
    with open(corpus / "zh" / "cmrc2018_zhwiki_contexts.jsonl", encoding="utf-8") as fh:
        zh = [json.loads(line)["text"] for line in fh][:40]
    return en[:20] + zh[:20], en[20:] + zh[20:]


def _exercise(index: IncrementalIndex, old: list[str], new: list[str]) -> None:
    cfg = MinHashConfig()
    old_sigs, new_sigs = minhash_signatures(old, None, cfg), minhash_signatures(new, None, cfg)
    keys = [f"old-{i}" for i in range(len(old))]
    assert index.insert(keys, old_sigs) == len(old)
    assert index.insert(keys, old_sigs) == 0, "re-inserting the same keys adds nothing"
    assert index.query(old_sigs) == keys
    assert index.query(new_sigs) == [None] * len(new)
    edited = [t.replace("the", "a", 1) for t in old]  # a near-duplicate still hits its original
    assert sum(h is not None for h in index.query(minhash_signatures(edited, None, cfg))) >= 0.9 * len(old)


def test_local_index_persists_between_runs(tmp_path, batches):
    old, new = batches
    cfg = IncrementalConfig(enabled=True, backend="local", path=tmp_path / "index.pkl")
    index = IncrementalIndex(cfg, MinHashConfig())
    _exercise(index, old, new)
    index.save()
    reopened = IncrementalIndex(cfg, MinHashConfig())
    assert len(reopened) == len(old)
    assert reopened.query(minhash_signatures(old, None, MinHashConfig())) == [
        f"old-{i}" for i in range(len(old))
    ]
    with pytest.raises(ValueError, match="index built with"):
        IncrementalIndex(cfg, MinHashConfig(num_perm=64))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server on a free loopback port (installed by scripts/redis.sh when missing)."""
    binary = shutil.which("redis-server")
    if binary is None:
        subprocess.run(
            ["bash", str(ROOT / "scripts" / "redis.sh"), "install"], capture_output=True, timeout=600
        )
        binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip(
            "redis-server is not installed and scripts/redis.sh could not install it (apt-get unavailable)"
        )
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def test_redis_index_is_shared_between_clients(redis_server, batches):
    old, new = batches
    cfg = IncrementalConfig(enabled=True, backend="redis", redis_port=redis_server, basename="test_idx")
    _exercise(IncrementalIndex(cfg, MinHashConfig()), old, new)
    other_client = IncrementalIndex(cfg, MinHashConfig())
    assert len(other_client) == len(old)
    sigs = minhash_signatures(old[:5], None, MinHashConfig())
    assert other_client.query(sigs) == [f"old-{i}" for i in range(5)]


def test_redis_backend_without_server_names_the_address():
    cfg = IncrementalConfig(enabled=True, backend="redis", redis_port=_free_port())
    with pytest.raises(ConnectionError, match="scripts/redis.sh"):
        IncrementalIndex(cfg, MinHashConfig())
