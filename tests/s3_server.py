"""A local S3 server (moto) for the tests of every command on object storage, and helpers to fill it.

The AWS settings are put into the environment when this module is imported (by conftest, before any
fixture runs), not when the server starts: Ray workers copy the driver's environment at ``ray.init``,
and the session Ray instance may start before the first S3 test. pyarrow's S3 filesystem reads
``AWS_ENDPOINT_URL``, so plain ``s3://bucket/key`` paths reach the server, in the test process and in
Ray workers alike. The fake credentials also keep every test away from a real AWS account.

The port is taken (bound, not listening) at import, so nothing else can grab it before the server
starts; until then a connection to it is refused at once rather than hanging.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per S3 request otherwise

HOST = "127.0.0.1"
MOTO_SKIP = "S3 tests need moto's server: pip install 'moto[server]' (in the dev extra: make install)"

_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_socket.bind((HOST, 0))
PORT: int = _socket.getsockname()[1]
ENDPOINT = f"http://{HOST}:{PORT}"
AWS_ENV = {
    "AWS_ENDPOINT_URL": ENDPOINT,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
os.environ.update(AWS_ENV)
for _name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_name, None)

_counter = itertools.count()


class S3Server:
    """The running server: its endpoint, and a filesystem on it that may create buckets."""

    def __init__(self, server) -> None:
        import pyarrow.fs as pafs

        self.endpoint = ENDPOINT
        self.port = PORT
        self._server = server
        self.fs = pafs.S3FileSystem(endpoint_override=ENDPOINT, allow_bucket_creation=True)

    def new_bucket(self) -> str:
        """A fresh, empty bucket: each test gets its own, so tests never see each other's objects."""
        name = f"t{next(_counter)}-{uuid.uuid4().hex[:12]}"
        self.fs.create_dir(name)
        return name


def _start():
    """moto's S3 app served from the reserved socket, in a daemon thread of this process."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    _socket.listen(128)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        HOST, PORT, app, threaded=True, request_handler=MotoRequestHandler, fd=_socket.fileno()
    )
    threading.Thread(target=server.serve_forever, name="moto-s3", daemon=True).start()
    return server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 for the whole session (skips the test when moto is missing)."""
    try:
        import moto.server  # noqa: F401
    except ImportError:
        pytest.skip(MOTO_SKIP)
    server = _start()
    yield S3Server(server)
    server.shutdown()


@pytest.fixture
def s3_uri(s3_server: S3Server) -> str:
    """``s3://BUCKET/prefix`` in a fresh bucket: where one test writes its inputs and outputs."""
    return f"s3://{s3_server.new_bucket()}/prefix"


def upload(local: str | Path, uri: str) -> str:
    """Copy a local file or folder (recursively) to ``uri``; returns ``uri``.

    A file lands at ``uri`` itself; a folder's files land under ``uri`` with their relative paths. Bytes
    are copied as they are (no compression by extension).
    """
    import pyarrow.fs as pafs

    from dataengine.io.paths import resolve

    local = Path(local).resolve()
    fs, inner = resolve(uri)
    if local.is_dir():
        pafs.copy_files(str(local), inner, pafs.LocalFileSystem(), fs)
    else:
        with local.open("rb") as src, fs.open_output_stream(inner, compression=None) as dst:
            dst.write(src.read())
    return uri


def put_bytes(uri: str, data: bytes) -> str:
    """Write ``data`` as the object ``uri``; returns ``uri``."""
    from dataengine.io.paths import resolve

    fs, inner = resolve(uri)
    with fs.open_output_stream(inner, compression=None) as dst:
        dst.write(data)
    return uri


def get_bytes(uri: str) -> bytes:
    """The whole object ``uri``."""
    from dataengine.io.paths import resolve

    fs, inner = resolve(uri)
    with fs.open_input_stream(inner, compression=None) as src:
        return src.read()


def list_files(uri: str) -> list[str]:
    """Every file under ``uri`` as a path relative to it, sorted."""
    import pyarrow.fs as pafs

    from dataengine.io.paths import resolve

    fs, inner = resolve(uri)
    infos = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    return sorted(i.path[len(inner) + 1 :] for i in infos if i.type == pafs.FileType.File)
