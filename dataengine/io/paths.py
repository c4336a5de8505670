"""Where inputs are and how to open them: local paths, directories, globs and `pyarrow.fs` URIs.

Every byte the input layer reads goes through `open_random_access`, so s3://, gs:// and file:// URIs
behave exactly like local paths (ranged reads, seeks) and no reader needs to know which it has.
`resolve` is the one place a path becomes a filesystem, for readers and writers alike; the small helpers
below it (`join`, `is_file`, `read_bytes`, `write_bytes_atomic`, ...) let the commands treat a URI as
they treat a local path without `pathlib`, which turns `s3://b/k` into `s3:/b/k`.

S3 endpoint, region and credentials come from the standard AWS settings (AWS_ENDPOINT_URL, AWS_REGION,
AWS_ACCESS_KEY_ID, ...), which pyarrow reads. Pass paths, not filesystems, to Ray tasks: a pickled
S3FileSystem loses its retry strategy, so a task calls `resolve` itself (cached per bucket).
"""

from __future__ import annotations

import functools
import glob
import os
import posixpath
from collections.abc import Sequence
from fnmatch import fnmatchcase

import pyarrow.fs as pafs

_GLOB_CHARS = frozenset("*?[")
_BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs"})


def _has_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def _hidden(name: str) -> bool:
    """Names starting with '.' or '_' (e.g. `.DS_Store`, `_SUCCESS`) are bookkeeping, not data."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return base.startswith((".", "_"))


# Attempts per S3 request: throttling (SlowDown, 503) and 5xx answers are retried with exponential backoff
# (AWS's standard strategy). pyarrow's default is 3 attempts, too few for a bucket that throttles a
# whole cluster's reads at once.
S3_MAX_ATTEMPTS = int(os.environ.get("DATAENGINE_S3_MAX_ATTEMPTS", "10"))


def _with_retries(fs: pafs.FileSystem) -> pafs.FileSystem:
    """The same S3 filesystem with S3_MAX_ATTEMPTS retries; other filesystems unchanged.

    ``from_uri`` has no retry option, but it is what reads AWS_ENDPOINT_URL, the region and the URI's
    query options, so its options are kept and only the retry strategy is added.
    """
    if fs.type_name != "s3":
        return fs
    options = fs.__reduce__()[1][0]
    strategy = pafs.AwsStandardS3RetryStrategy(max_attempts=S3_MAX_ATTEMPTS)
    return pafs.S3FileSystem(**options, retry_strategy=strategy)


def _from_uri(uri: str) -> tuple[pafs.FileSystem, str]:
    fs, inner = pafs.FileSystem.from_uri(uri)
    return _with_retries(fs), inner


@functools.lru_cache(maxsize=64)
def _bucket_filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    """One filesystem per bucket: making an S3 one resolves the bucket's region over the network."""
    return _from_uri(f"{scheme}://{bucket}")[0]


def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a ``pyarrow.fs`` URI (s3://, gs://, file://) rather than a local path."""
    return "://" in str(path)


def resolve(path: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``path`` and the path inside it (local paths made absolute).

    The one place paths become filesystems, so every command reads and writes s3://, gs:// and file://
    URIs as it does local paths, and every S3 request retries throttling with backoff.
    """
    path = os.fspath(path)
    if not is_uri(path):
        return pafs.LocalFileSystem(), os.path.abspath(path)
    scheme, rest = path.split("://", 1)
    if scheme in _BUCKET_SCHEMES and "?" not in rest:
        return _bucket_filesystem(scheme, rest.split("/", 1)[0]), rest
    return _from_uri(path)


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base/part/...`` for a local path or a URI: ``pathlib`` would turn ``s3://b/k`` into ``s3:/b/k``."""
    base = os.fspath(base)
    if is_uri(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def parent(path: str | os.PathLike) -> str:
    """The folder holding ``path`` (a local path or a URI)."""
    path = os.fspath(path)
    if is_uri(path):
        return posixpath.dirname(path.rstrip("/"))
    return os.path.dirname(os.path.abspath(path))


def file_type(path: str | os.PathLike) -> pafs.FileType:
    """File, Directory or NotFound; on object storage a prefix holding objects counts as a directory."""
    fs, inner = resolve(path)
    return fs.get_file_info(inner).type


def is_file(path: str | os.PathLike) -> bool:
    return file_type(path) == pafs.FileType.File


def is_dir(path: str | os.PathLike) -> bool:
    return file_type(path) == pafs.FileType.Directory


def read_bytes(path: str | os.PathLike) -> bytes:
    """The whole file as stored (pyarrow's streams would otherwise gunzip a .gz); FileNotFoundError names
    ``path`` (pyarrow's own error names only the key)."""
    fs, inner = resolve(path)
    try:
        with fs.open_input_stream(inner, compression=None) as fh:
            return fh.read()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{os.fspath(path)}: no such file") from err


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``path`` whole or not at all: a local file through a temporary name and a rename; an
    object with one PUT, which object stores make visible only once complete (a rename there is a copy).
    The bytes are stored as given: pyarrow's streams would otherwise gzip a name ending in .gz."""
    fs, inner = resolve(path)
    if isinstance(fs, pafs.LocalFileSystem):
        os.makedirs(os.path.dirname(inner), exist_ok=True)
        tmp = f"{inner}.{os.getpid()}.tmp"  # two processes writing one file never share a temporary
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, inner)
        return
    with fs.open_output_stream(inner, compression=None) as fh:
        fh.write(data)


def delete_file(path: str | os.PathLike) -> None:
    """Remove ``path`` if it is there."""
    fs, inner = resolve(path)
    if fs.get_file_info(inner).type == pafs.FileType.File:
        fs.delete_file(inner)


def open_random_access(path: str) -> pafs.NativeFile:
    """A seekable binary file on any filesystem (no implicit decompression)."""
    fs, inner = resolve(path)
    return fs.open_input_file(inner)


def file_size(path: str) -> int:
    fs, inner = resolve(path)
    return fs.get_file_info(inner).size


def file_stamps(paths: Sequence[str]) -> dict[str, list[int | None]]:
    """[size, modification time in ns] per file: what a resumed run compares to notice that an input
    changed since the run started (an appended file keeps its units, so they alone would not tell).
    One get_file_info call per filesystem (per bucket), not one per file."""
    groups: dict[object, tuple[pafs.FileSystem, list[tuple[str, str]]]] = {}
    for path in paths:
        fs, inner = resolve(path)
        key = "local" if fs.type_name == "local" else id(fs)  # bucket filesystems are cached
        groups.setdefault(key, (fs, []))[1].append((path, inner))
    stamps = {}
    for fs, members in groups.values():
        infos = fs.get_file_info([inner for _, inner in members])
        stamps.update(
            {path: [info.size, info.mtime_ns] for (path, _), info in zip(members, infos, strict=True)}
        )
    return stamps


def _uri_prefix(path: str) -> str:
    """'s3://' for 's3://bucket/key'; the part put back in front of paths listed by the filesystem."""
    return path.split("://", 1)[0] + "://"


def _walk(fs: pafs.FileSystem, directory: str) -> list[str]:
    infos = fs.get_file_info(pafs.FileSelector(directory, recursive=True))
    return [
        i.path
        for i in infos
        if i.type == pafs.FileType.File and not any(_hidden(p) for p in i.path[len(directory) :].split("/"))
    ]


def _expand_uri(pattern: str) -> list[str]:
    fs, inner = resolve(pattern)
    prefix = _uri_prefix(pattern) if not isinstance(fs, pafs.LocalFileSystem) else ""
    if _has_glob(inner):
        # List from the deepest folder without wildcards, then match the whole pattern ('*' also crosses '/').
        first = min(inner.index(c) for c in _GLOB_CHARS if c in inner)
        base = inner[:first].rsplit("/", 1)[0]
        found = [p for p in _walk(fs, base) if fnmatchcase(p, inner)]
    else:
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.File:
            found = [inner]
        elif info.type == pafs.FileType.Directory:
            found = _walk(fs, inner)
        else:
            raise FileNotFoundError(f"input {pattern!r} does not exist")
    return [prefix + p for p in found]


def _expand_local(pattern: str) -> list[str]:
    if _has_glob(pattern):
        matches = glob.glob(pattern, recursive=True)
    elif os.path.exists(pattern):
        matches = [pattern]
    else:
        raise FileNotFoundError(f"input {pattern!r} does not exist")
    found = []
    for m in matches:
        if os.path.isdir(m):
            found += _walk(pafs.LocalFileSystem(), os.path.abspath(m))
        else:
            found.append(os.path.abspath(m))
    return found


def expand_inputs(paths: Sequence[str]) -> list[str]:
    """All input files named by `paths`, sorted and deduplicated.

    Each entry is a file, a directory (walked recursively, skipping names that start with '.' or '_'),
    a glob (`**` recursive for local paths), or a `pyarrow.fs` URI (s3://, gs://, file://; globs too).
    An entry that names nothing raises FileNotFoundError naming it: a typo must not shrink a run silently.
    """
    if isinstance(paths, str):
        raise TypeError("expand_inputs takes a list of paths, not one string")
    files: set[str] = set()
    for pattern in paths:
        found = _expand_uri(pattern) if is_uri(pattern) else _expand_local(pattern)
        if not found:
            raise FileNotFoundError(f"input pattern {pattern!r} matched no files")
        files.update(found)
    return sorted(files)
