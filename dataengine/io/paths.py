"""Where inputs are and how to open them: local paths, directories, globs and `pyarrow.fs` URIs.

Every byte the input layer reads goes through `open_random_access`, so s3://, gs:// and file:// URIs
behave exactly like local paths (ranged reads, seeks) and no reader needs to know which it has.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Sequence
from fnmatch import fnmatchcase

import pyarrow.fs as pafs

_GLOB_CHARS = frozenset("*?[")
_BUCKET_SCHEMES = frozenset({"s3", "gs", "gcs"})


def _is_uri(path: str) -> bool:
    return "://" in path


def _has_glob(path: str) -> bool:
    return any(c in _GLOB_CHARS for c in path)


def _hidden(name: str) -> bool:
    """Names starting with '.' or '_' (e.g. `.DS_Store`, `_SUCCESS`) are bookkeeping, not data."""
    base = name.rstrip("/").rsplit("/", 1)[-1]
    return base.startswith((".", "_"))


@functools.lru_cache(maxsize=64)
def _bucket_filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    """One filesystem per bucket: making an S3 one resolves the bucket's region over the network."""
    return pafs.FileSystem.from_uri(f"{scheme}://{bucket}")[0]


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding `path` and the path inside it (local paths made absolute)."""
    if not _is_uri(path):
        return pafs.LocalFileSystem(), os.path.abspath(path)
    scheme, rest = path.split("://", 1)
    if scheme in _BUCKET_SCHEMES and "?" not in rest:
        return _bucket_filesystem(scheme, rest.split("/", 1)[0]), rest
    return pafs.FileSystem.from_uri(path)


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
        found = _expand_uri(pattern) if _is_uri(pattern) else _expand_local(pattern)
        if not found:
            raise FileNotFoundError(f"input pattern {pattern!r} matched no files")
        files.update(found)
    return sorted(files)
