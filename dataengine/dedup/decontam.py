"""Benchmark decontamination: n-gram overlap with evaluation sets.

A document is contaminated when it shares one n-gram with a benchmark: 13
consecutive words (after the same lowercasing and punctuation stripping as the
MinHash shingles), or `char_ngram` consecutive characters for Chinese,
Japanese and Korean. Policy `drop` rejects the document as
`decontam:<benchmark>`; policy `cut` removes the matching spans and keeps the
rest (dropping it only if too little remains).

The benchmark n-gram table is a sorted hash array sized by the benchmarks,
not by the corpus, so each worker holds one copy.
"""

from __future__ import annotations

import bz2
import gzip
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataengine.dedup.config import DecontamConfig
from dataengine.dedup.minhash import ngram_hashes

_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".txt", ".txt.gz", ".txt.bz2")
# The units that minhash.normalize_for_shingles keeps: words, or characters for CJK.
_UNIT_WORD = re.compile(r"[^\W_]+")
_UNIT_CHAR = re.compile(r"[^\W_]")


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _open_text(path: Path):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def benchmark_texts(path: Path) -> Iterator[str]:
    """One text per benchmark record: all string fields of a JSONL record joined, or one line of a text file."""
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            if ".jsonl" in path.name or path.suffix == ".json":
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{lineno}: invalid JSON in benchmark file ({err.msg})") from err
                yield "\n".join(_strings(record))
            else:
                yield line


_PAPERWORK = ("SOURCES", "LICENSE", "LICENCE", "NOTICE", "README", "COPYING")


def _not_a_benchmark(name: str) -> bool:
    """Training splits and the paperwork beside benchmark files (licenses, notices, source notes)."""
    return "train" in name or name.upper().startswith(_PAPERWORK)


def benchmark_files(paths: Sequence[Path]) -> dict[str, Path]:
    """Benchmark name ("<folder>.<file stem>") -> file. A folder contributes its evaluation files (no 'train')."""
    out: dict[str, Path] = {}
    for p in map(Path, paths):
        if p.is_file():
            out[f"{p.parent.name}.{p.name.split('.')[0]}"] = p
        elif p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.name.endswith(_SUFFIXES) and not _not_a_benchmark(f.name):
                    rel = f.relative_to(p).with_name(f.name.split(".")[0])
                    out[".".join(rel.parts)] = f
        else:
            raise FileNotFoundError(f"decontam benchmark not found: {p}")
    return out


@dataclass
class BenchmarkIndex:
    """Sorted n-gram hashes of all benchmarks and, aligned, which benchmark each came from."""

    names: list[str]
    hashes: np.ndarray
    owners: np.ndarray

    @classmethod
    def build(cls, cfg: DecontamConfig) -> BenchmarkIndex:
        names, all_h, all_o = [], [], []
        for bi, (name, path) in enumerate(benchmark_files(cfg.benchmarks).items()):
            names.append(name)
            texts = list(benchmark_texts(path))
            for lo in range(0, len(texts), 2000):
                chunk = texts[lo : lo + 2000]
                h, owner, cjk = ngram_hashes(chunk, None, cfg.word_ngram, cfg.char_ngram)
                units = _unit_counts(chunk, cjk)
                n = np.where(cjk, cfg.char_ngram, cfg.word_ngram)
                long_enough = (units >= n)[owner]  # shorter records cannot yield a full n-gram
                all_h.append(h[long_enough])
                all_o.append(np.full(int(long_enough.sum()), bi, dtype=np.int32))
        hashes = np.concatenate(all_h) if all_h else np.zeros(0, np.uint64)
        owners = np.concatenate(all_o) if all_o else np.zeros(0, np.int32)
        order = np.argsort(hashes, kind="stable")
        hashes, owners = hashes[order], owners[order]
        first = np.concatenate([[True], hashes[1:] != hashes[:-1]]) if len(hashes) else np.zeros(0, bool)
        return cls(names, hashes[first], owners[first])

    def match(self, h: np.ndarray) -> np.ndarray:
        """Benchmark index of each hash, -1 where it is in no benchmark."""
        if len(self.hashes) == 0:
            return np.full(len(h), -1, np.int32)
        pos = np.minimum(np.searchsorted(self.hashes, h), len(self.hashes) - 1)
        return np.where(self.hashes[pos] == h, self.owners[pos], -1)


def _unit_counts(texts: Sequence[str], cjk: np.ndarray) -> np.ndarray:
    return np.array(
        [len((_UNIT_CHAR if c else _UNIT_WORD).findall(t or "")) for t, c in zip(texts, cjk, strict=True)],
        dtype=np.int64,
    )


@dataclass
class Contamination:
    """Per document: matched benchmark (name or None), number of matching n-grams, text after cutting."""

    benchmark: list[str | None]
    ngrams: np.ndarray
    cut_text: list[str | None]


def scan(
    texts: Sequence[str], langs: Sequence[str | None], index: BenchmarkIndex, cfg: DecontamConfig
) -> Contamination:
    """Find benchmark n-grams in a batch; under `cut`, also the text with matching spans removed."""
    h, owner, cjk = ngram_hashes(texts, langs, cfg.word_ngram, cfg.char_ngram)
    hit = index.match(h)
    counts = np.bincount(owner[hit >= 0], minlength=len(texts))
    bench: list[str | None] = [None] * len(texts)
    cut: list[str | None] = [None] * len(texts)
    if counts.any():
        n_of = np.where(cjk, cfg.char_ngram, cfg.word_ngram)
        bounds = np.searchsorted(owner, np.arange(len(texts) + 1))
        for d in np.flatnonzero(counts):
            mine = hit[bounds[d] : bounds[d + 1]]
            bench[d] = index.names[int(np.bincount(mine[mine >= 0]).argmax())]
            if cfg.policy == "cut":
                cut[d] = _cut(texts[d], bool(cjk[d]), np.flatnonzero(mine >= 0), int(n_of[d]))
    return Contamination(bench, counts, cut)


def _cut(text: str, cjk: bool, first_units: np.ndarray, n: int) -> str:
    """Remove the original-text spans covered by the matching n-grams (unit i = i-th word or CJK character)."""
    spans = [m.span() for m in (_UNIT_CHAR if cjk else _UNIT_WORD).finditer(text)]
    covered = np.zeros(len(spans) + 1, dtype=np.int64)
    np.add.at(covered, first_units, 1)
    np.add.at(covered, np.minimum(first_units + n, len(spans)), -1)
    inside = np.cumsum(covered)[: len(spans)] > 0
    pieces, pos, i = [], 0, 0
    while i < len(spans):
        if not inside[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(spans) and inside[j + 1]:
            j += 1
        pieces.append(text[pos : spans[i][0]])
        pos = spans[j][1]
        i = j + 1
    pieces.append(text[pos:])
    return "".join(pieces)
