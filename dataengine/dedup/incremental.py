"""A persistent LSH index of everything ingested before, for deduplicating new batches.

The index is datasketch's `MinHashLSH` with the same bands/rows and
permutations as the batch phase. Backends: `local` keeps the index (and the
signatures used to verify a hit) in one pickle file, needing no server;
`redis` uses datasketch's Redis storage for the buckets and a Redis hash for
the signatures, so many workers and many runs share one index.

A candidate from the index is a duplicate when its estimated Jaccard (share
of equal signature values) reaches `jaccard_threshold`; earlier batches' texts
are not re-read.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from datasketch import MinHash, MinHashLSH

from dataengine.dedup.config import IncrementalConfig, MinHashConfig
from dataengine.dedup.minhash import EMPTY, permutations


def external_uid(key: str) -> int:
    """A negative row id for a document of an earlier batch: below every real row id, so it always survives."""
    return -1 - (int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") >> 2)


class IncrementalIndex:
    def __init__(self, cfg: IncrementalConfig, mh: MinHashConfig):
        self.cfg, self.mh = cfg, mh
        self._a, self._b = permutations(mh.num_perm, mh.seed)
        if cfg.backend == "redis":
            import redis

            conn = {"host": cfg.redis_host, "port": cfg.redis_port, "db": cfg.redis_db}
            try:
                redis.Redis(**conn).ping()
            except redis.exceptions.ConnectionError as err:
                raise ConnectionError(
                    f"incremental.backend=redis: no Redis at {cfg.redis_host}:{cfg.redis_port} ({err}); "
                    "start one with scripts/redis.sh start PORT"
                ) from err
            self._redis = redis.Redis(**conn)
            self._sig_key = f"{cfg.basename}_sigs".encode()
            self.lsh = MinHashLSH(
                num_perm=mh.num_perm,
                params=mh.band_params,
                storage_config={"type": "redis", "basename": cfg.basename.encode(), "redis": conn},
            )
            self._sigs: dict[str, bytes] | None = None
        else:
            if cfg.path is None:
                raise ValueError("incremental.backend=local needs incremental.path (the index file)")
            self._redis = None
            if Path(cfg.path).exists():
                with open(cfg.path, "rb") as fh:
                    state = pickle.load(fh)
                if state["params"] != (mh.num_perm, mh.seed, mh.band_params):
                    raise ValueError(
                        f"{cfg.path}: index built with (num_perm, seed, bands/rows) = {state['params']}, "
                        f"config has {(mh.num_perm, mh.seed, mh.band_params)}"
                    )
                self.lsh, self._sigs = state["lsh"], state["sigs"]
            else:
                self.lsh = MinHashLSH(num_perm=mh.num_perm, params=mh.band_params)
                self._sigs = {}

    def _minhash(self, sig: np.ndarray) -> MinHash:
        return MinHash(hashvalues=sig, permutations=(self._a, self._b), scheme="affine32")

    def _stored(self, keys: list[str]) -> list[np.ndarray | None]:
        if self._redis is not None:
            raw = self._redis.hmget(self._sig_key, keys) if keys else []
        else:
            raw = [self._sigs.get(k) for k in keys]
        return [None if r is None else np.frombuffer(r, dtype=np.uint32) for r in raw]

    def query(self, sigs: np.ndarray) -> list[str | None]:
        """For each signature, the key of the most similar earlier document at or above the threshold."""
        out: list[str | None] = []
        for sig in sigs:
            if np.all(sig == EMPTY):
                out.append(None)
                continue
            keys = sorted(self.lsh.query(self._minhash(sig)))
            best, best_sim = None, self.mh.jaccard_threshold
            for key, stored in zip(keys, self._stored(keys), strict=True):
                sim = float(np.mean(stored == sig)) if stored is not None else 0.0
                if sim >= best_sim:
                    best, best_sim = key, sim
            out.append(best)
        return out

    def insert(self, keys: Sequence[str], sigs: np.ndarray) -> int:
        """Add documents (skipping keys already present and empty signatures); returns how many were added."""
        added = 0
        known = self._stored(list(keys))
        with self.lsh.insertion_session() as session:
            fresh = {}
            for key, sig, old in zip(keys, sigs, known, strict=True):
                if np.all(sig == EMPTY) or key in fresh or old is not None:
                    continue
                session.insert(key, self._minhash(sig), check_duplication=False)
                fresh[key] = np.ascontiguousarray(sig, dtype=np.uint32).tobytes()
                added += 1
        if fresh:
            if self._redis is not None:
                self._redis.hset(self._sig_key, mapping=fresh)
            else:
                self._sigs.update(fresh)
        return added

    def save(self) -> None:
        """Persist the local index atomically (Redis persists by itself)."""
        if self._redis is not None:
            return
        path = Path(self.cfg.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(
                {
                    "params": (self.mh.num_perm, self.mh.seed, self.mh.band_params),
                    "lsh": self.lsh,
                    "sigs": self._sigs,
                },
                fh,
            )
        tmp.replace(path)

    def __len__(self) -> int:
        if self._redis is not None:
            return int(self._redis.hlen(self._sig_key))
        return len(self._sigs)
