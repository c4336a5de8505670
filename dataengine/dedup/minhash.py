"""MinHash signatures for a whole batch of documents at numpy speed.

datasketch hashes every shingle with SHA-1 in Python and updates the
signature one shingle at a time; DataTrove tokenizes each document with a
word tokenizer and hashes shingles one by one. Here a batch of documents is
normalized with one regex pass per document, turned into one code-point array,
and every shingle of the batch is hashed at once from prefix sums of a
polynomial hash (a shingle is a contiguous span of the normalized text). The
permutations are datasketch's own ("affine32": h -> a*h + b mod 2^32), so a
row of the result loads into `datasketch.MinHash(hashvalues=...)` unchanged.

Shingles are word n-grams for space-delimited languages and character
n-grams for Chinese, Japanese and Korean, chosen from the `lang` value (or,
when it is missing, from the share of Han/kana/Hangul characters).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import regex

from dataengine.dedup.config import MinHashConfig
from dataengine.stages.document import CJK_LANGS

EMPTY = np.uint32(0xFFFFFFFF)
_NON_WORD = re.compile(r"[\W_]+")  # stdlib re: same classes as [^\p{L}\p{N}] on text, 30% faster
_SPACES = regex.compile(r"\s")
_CJK_CHAR = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_SPACE = np.uint32(32)
_P = np.uint64(0x100000001B3)  # odd, so invertible modulo 2^64
_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
_CHUNK_COLS = 8192  # shingles per permutation block: 128 x 8192 x 4 B = 4 MiB
_CHUNK_CODEPOINTS = 1 << 18  # text per shingling pass: 2 MiB prefix and power tables


def is_cjk(text: str, lang: str | None) -> bool:
    """Character shingles when language ID says CJK, or (no language) when CJK characters dominate."""
    if lang:
        return lang.split("_")[0].split("-")[0].lower() in CJK_LANGS
    sample = text[:2000]
    letters = len(sample) - len(_SPACES.findall(sample))
    return letters > 0 and len(_CJK_CHAR.findall(sample)) > 0.3 * letters


def normalize_for_shingles(text: str, cjk: bool) -> str:
    """Lowercase, punctuation and spacing removed: words joined by one space, CJK characters joined by none."""
    words = _NON_WORD.sub(" ", text.lower()).strip()
    return words.replace(" ", "") if cjk else words


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a odd, b) for (num_perm, seed)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def _fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: spreads the linear polynomial hash over all bits."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


_POWERS: dict[int, np.ndarray] = {}


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, as datasketch applies it before its affine32 permutations."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def _powers(base: np.uint64, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) mod 2^64, cached per process and grown by doubling."""
    have = _POWERS.get(int(base))
    if have is None or len(have) < n:
        size = max(n, 2 * len(have) if have is not None else 1 << 16)
        out = np.full(size, base, dtype=np.uint64)
        out[0] = 1
        with np.errstate(over="ignore"):
            have = _POWERS[int(base)] = np.cumprod(out, dtype=np.uint64)
    return have[:n]


def _batch_shingles(
    norms: Sequence[str], cjk: np.ndarray, word_n: int, char_n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hash every shingle of every document: (uint64 hashes, owning document index), grouped by document.

    Documents are shingled in runs of about _CHUNK_CODEPOINTS code points: the prefix-hash and power
    tables then stay cache-sized, where one pass over a large batch gathers from tables of hundreds of
    MB (twice as slow for the same text)."""
    hashes, owners, start, size = [], [], 0, 0
    for i, norm in enumerate(norms):
        if size and size + len(norm) > _CHUNK_CODEPOINTS:
            h, doc = _shingles_of_run(norms[start:i], cjk[start:i], word_n, char_n)
            hashes.append(h)
            owners.append(doc + start)
            start, size = i, 0
        size += len(norm) + 1
    h, doc = _shingles_of_run(norms[start:], cjk[start:], word_n, char_n)
    return np.concatenate([*hashes, h]), np.concatenate([*owners, doc + start])


def _shingles_of_run(
    norms: Sequence[str], cjk: np.ndarray, word_n: int, char_n: int
) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter((len(s) for s in norms), dtype=np.int64, count=len(norms))
    if lengths.sum() == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    cps = np.frombuffer(" ".join(norms).encode("utf-32-le"), dtype=np.uint32)
    # Per position: which document, and whether that document is shingled by character.
    pos_doc = np.repeat(np.arange(len(norms)), lengths + 1)[: len(cps)]
    char_mode = cjk[pos_doc]
    not_space = cps != _SPACE
    prev_space = np.concatenate([[True], ~not_space[:-1]])
    next_space = np.concatenate([~not_space[1:], [True]])
    tok_start = np.flatnonzero(not_space & (prev_space | char_mode))
    tok_end = np.flatnonzero(not_space & (next_space | char_mode)) + 1
    tok_doc = pos_doc[tok_start]
    n_tok = np.bincount(tok_doc, minlength=len(norms))
    first_tok = np.concatenate([[0], np.cumsum(n_tok)[:-1]])
    ngram = np.where(cjk, char_n, word_n)
    # A document with fewer units than n still gets one shingle: all of it.
    n_sh = np.where(n_tok > 0, np.maximum(n_tok - ngram + 1, 1), 0)
    sh_doc = np.repeat(np.arange(len(norms)), n_sh)
    sh_offset = np.arange(len(sh_doc)) - np.repeat(np.cumsum(n_sh) - n_sh, n_sh)
    first = first_tok[sh_doc] + sh_offset
    last = np.minimum(first + ngram[sh_doc] - 1, first_tok[sh_doc] + n_tok[sh_doc] - 1)
    starts, ends = tok_start[first], tok_end[last]
    with np.errstate(over="ignore"):
        # prefix[i] = sum_{j<i} (cp_j + 1) * P^j  (mod 2^64, by uint64 wrap-around)
        terms = (cps.astype(np.uint64) + np.uint64(1)) * _powers(_P, len(cps))
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(terms, dtype=np.uint64)])
        span = (prefix[ends] - prefix[starts]) * _powers(_P_INV, len(cps) + 1)[starts]
        hashes = _fmix64(span ^ (ends - starts).astype(np.uint64))
    return hashes, sh_doc


def _prepare(texts: Sequence[str], langs: Sequence[str | None] | None) -> tuple[list[str], np.ndarray]:
    if langs is None:
        langs = [None] * len(texts)
    if len(langs) != len(texts):
        raise ValueError(f"minhash: {len(texts)} texts but {len(langs)} langs")
    cjk = np.fromiter((is_cjk(t or "", lang) for t, lang in zip(texts, langs, strict=True)), bool, len(texts))
    norms = [normalize_for_shingles(t or "", c) for t, c in zip(texts, cjk, strict=True)]
    return norms, cjk


def ngram_hashes(
    texts: Sequence[str], langs: Sequence[str | None] | None, word_n: int, char_n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All n-gram hashes of a batch: (uint64 hashes, owning text index, CJK flag per text).

    A text with fewer units than n contributes one hash of all of it.
    """
    norms, cjk = _prepare(texts, langs)
    hashes, owner = _batch_shingles(norms, cjk, word_n, char_n)
    return hashes, owner, cjk


def minhash_signatures(
    texts: Sequence[str], langs: Sequence[str | None] | None, cfg: MinHashConfig
) -> np.ndarray:
    """MinHash signatures, uint32 [len(texts), num_perm]; a document without shingles gets all 0xFFFFFFFF."""
    norms, cjk = _prepare(texts, langs)
    sig = np.full((len(texts), cfg.num_perm), EMPTY, dtype=np.uint32)
    hashes, sh_doc = _batch_shingles(norms, cjk, cfg.word_ngram, cfg.char_ngram)
    if len(hashes) == 0:
        return sig
    h32 = _fmix32(shingle_hash32(hashes))
    a, b = permutations(cfg.num_perm, cfg.seed)
    # Permutations x shingles, so each document's minimum is a reduction along contiguous memory.
    buf = np.empty((cfg.num_perm, _CHUNK_COLS), dtype=np.uint32)
    for lo in range(0, len(h32), _CHUNK_COLS):
        hi = min(lo + _CHUNK_COLS, len(h32))
        block = buf[:, : hi - lo]
        np.multiply(a[:, None], h32[None, lo:hi], out=block)
        np.add(block, b[:, None], out=block)
        docs = sh_doc[lo:hi]
        seg = np.flatnonzero(np.concatenate([[True], docs[1:] != docs[:-1]]))
        mins = np.minimum.reduceat(block, seg, axis=1).T
        owners = docs[seg]
        sig[owners] = np.minimum(sig[owners], mins)
    return sig


def shingle_hash32(hashes: np.ndarray) -> np.ndarray:
    """The 32-bit shingle value a datasketch `MinHash(hashfunc=identity)` would be updated with."""
    return (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32)


def shingle_sets(
    texts: Sequence[str], langs: Sequence[str | None] | None, cfg: MinHashConfig
) -> list[np.ndarray]:
    """The sorted, unique 64-bit shingle hashes of each document: the exact sets that MinHash estimates."""
    norms, cjk = _prepare(texts, langs)
    hashes, sh_doc = _batch_shingles(norms, cjk, cfg.word_ngram, cfg.char_ngram)
    bounds = np.searchsorted(sh_doc, np.arange(len(texts) + 1))
    return [np.unique(hashes[bounds[i] : bounds[i + 1]]) for i in range(len(texts))]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """True Jaccard similarity of two sorted unique hash arrays (0 when both are empty)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One int64 key per (document, band): a 64-bit hash of the band's rows, salted with the band index."""
    n = sig.shape[0]
    if n == 0:
        return np.zeros((0, bands), np.int64)
    view = sig[:, : bands * rows].reshape(n, bands, rows).astype(np.uint64)
    with np.errstate(over="ignore"):
        acc = np.broadcast_to(np.arange(bands, dtype=np.uint64) + np.uint64(1), (n, bands)).copy()
        for r in range(rows):
            acc = _fmix64(acc * _P + view[:, :, r])
    return acc.view(np.int64)


# Phase 1 stores signatures in a `minhash` column; the parameters that made them travel in the
# Parquet schema metadata under this key, so phase 2 reuses a column only when they match its own.
SIGNATURE_METADATA_KEY = b"dataengine.minhash"
SIGNATURE_TYPE = pa.list_(pa.uint32())


def signature_params(cfg: MinHashConfig) -> dict[str, int]:
    """What determines a signature's values (banding and thresholds do not)."""
    return {
        "num_perm": cfg.num_perm,
        "seed": cfg.seed,
        "word_ngram": cfg.word_ngram,
        "char_ngram": cfg.char_ngram,
    }


def signature_metadata(cfg: MinHashConfig) -> dict[bytes, bytes]:
    return {SIGNATURE_METADATA_KEY: json.dumps(signature_params(cfg), sort_keys=True).encode()}


def stored_signatures_match(schema: pa.Schema, cfg: MinHashConfig) -> bool:
    """True when a file's `minhash` column was written with exactly `cfg`'s signature parameters."""
    if "minhash" not in schema.names:
        return False
    raw = (schema.metadata or {}).get(SIGNATURE_METADATA_KEY)
    try:
        return raw is not None and json.loads(raw) == signature_params(cfg)
    except ValueError:
        return False


def signature_column(sig: np.ndarray) -> pa.ListArray:
    """uint32 [n, num_perm] -> a `list<uint32>` column without a Python object per value."""
    n, k = sig.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(sig.reshape(-1), pa.uint32()), type=SIGNATURE_TYPE)


def signatures_from_column(col: pa.Array | pa.ChunkedArray, num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 [n, num_perm], usable mask): rows that are null or of another length are not usable."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    n = len(arr)
    sig = np.full((n, num_perm), EMPTY, dtype=np.uint32)
    if n == 0:
        return sig, np.zeros(0, dtype=bool)
    offsets = arr.offsets.to_numpy()  # absolute positions into `values`, also for a sliced array
    usable = (np.diff(offsets) == num_perm) & ~arr.is_null().to_numpy(zero_copy_only=False)
    values = arr.values.to_numpy(zero_copy_only=False).astype(np.uint32, copy=False)
    starts = offsets[:-1][usable]
    sig[usable] = values[starts[:, None] + np.arange(num_perm)]
    return sig, usable
