"""The one filesystem layer (``dataengine.io.paths``) on a local S3 server (moto): endpoint from the
environment, one filesystem per bucket, one ``resolve`` for readers and writers, input expansion of
folders and globs, and retries with backoff when the store throttles (a proxy in front of moto answers
503 SlowDown, as S3 does under load)."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow.fs as pafs
import pytest
from s3_server import HOST, PORT, get_bytes, put_bytes, upload

from dataengine.io import paths, writers
from dataengine.io.paths import expand_inputs, file_stamps, is_dir, is_file, join, read_bytes, resolve

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


def test_s3_paths_resolve_through_the_environment(s3_uri):
    """AWS_ENDPOINT_URL (set by the fixture) is honoured by plain s3:// paths; one filesystem per bucket,
    the same function behind writers.resolve; a URI is joined without pathlib's `s3:/` mangling."""
    assert writers.resolve is paths.resolve
    fs, inner = resolve(f"{s3_uri}/a/b.jsonl")
    assert fs.type_name == "s3" and inner == s3_uri.removeprefix("s3://") + "/a/b.jsonl"
    assert resolve(f"{s3_uri}/other")[0] is fs
    assert join(s3_uri, "x", "y.json") == f"{s3_uri}/x/y.json"
    put_bytes(join(s3_uri, "x", "y.json"), '{"text": "你好"}'.encode())
    assert is_file(f"{s3_uri}/x/y.json") and is_dir(f"{s3_uri}/x") and not is_file(f"{s3_uri}/x/z")
    with pytest.raises(FileNotFoundError, match=f"{s3_uri}/x/z: no such file"):
        read_bytes(f"{s3_uri}/x/z")


def test_gz_objects_are_stored_and_read_as_is(s3_uri, tmp_path):
    """pyarrow's streams gzip/gunzip by extension unless told not to: the layer never does."""
    data = b"\x1f\x8b not really gzip"
    (tmp_path / "x.jsonl.gz").write_bytes(data)
    upload(tmp_path / "x.jsonl.gz", f"{s3_uri}/x.jsonl.gz")
    assert get_bytes(f"{s3_uri}/x.jsonl.gz") == data == read_bytes(f"{s3_uri}/x.jsonl.gz")
    paths.write_bytes_atomic(f"{s3_uri}/y.json.gz", data)
    assert get_bytes(f"{s3_uri}/y.json.gz") == data


def test_expand_inputs_on_s3_folders_and_globs(corpus, s3_uri):
    upload(corpus / "zh", f"{s3_uri}/zh")
    upload(corpus / "web" / "text", f"{s3_uri}/web")
    put_bytes(f"{s3_uri}/web/_SUCCESS", b"")
    web = expand_inputs([f"{s3_uri}/web"])
    assert web and all(p.startswith(f"{s3_uri}/web/") for p in web)
    assert f"{s3_uri}/web/_SUCCESS" not in web  # bookkeeping names are skipped, as locally
    jsonl = expand_inputs([f"{s3_uri}/*/*.jsonl"])
    assert f"{s3_uri}/zh/cmrc2018_zhwiki_contexts.jsonl" in jsonl and all(p.endswith(".jsonl") for p in jsonl)
    stamps = file_stamps(jsonl)
    assert all(size and size > 0 for size, _ in stamps.values())
    with pytest.raises(FileNotFoundError, match=f"{s3_uri}/nothing"):
        expand_inputs([f"{s3_uri}/nothing"])


class _Throttling(BaseHTTPRequestHandler):
    """Forwards GET/HEAD to moto, answering every other request 503 SlowDown first."""

    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    requests = 0
    throttled = 0

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        with self.lock:
            type(self).requests += 1
            throttle = self.requests % 2 == 1
            type(self).throttled += throttle
        if throttle:
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(SLOW_DOWN)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(SLOW_DOWN)
            return
        upstream = http.client.HTTPConnection(HOST, PORT, timeout=30)
        upstream.request(self.command, self.path, headers=dict(self.headers))
        response = upstream.getresponse()
        body = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "server", "date"):
                self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        upstream.close()

    do_GET = do_HEAD = _forward


@pytest.fixture
def throttling_endpoint(s3_server):
    server = ThreadingHTTPServer((HOST, 0), _Throttling)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Throttling.requests = _Throttling.throttled = 0
    yield f"{HOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_throttled_requests_are_retried_with_backoff(s3_uri, throttling_endpoint, monkeypatch):
    """Every other request gets 503 SlowDown; reads through the layer still succeed (retried), and with
    retries off the same read fails: the retry strategy is what carries it."""
    text = "三国演义 The Romance of the Three Kingdoms\n".encode() * 50
    put_bytes(f"{s3_uri}/t/doc.txt", text)
    query = f"?endpoint_override={throttling_endpoint}&scheme=http"
    through_proxy = f"{s3_uri}/t/doc.txt{query}"
    assert read_bytes(through_proxy) == text
    fs, inner = resolve(through_proxy)
    assert fs.get_file_info(inner).size == len(text)
    listed = fs.get_file_info(pafs.FileSelector(inner.rsplit("/", 1)[0]))
    assert [info.size for info in listed] == [len(text)]
    assert _Throttling.throttled >= 3

    monkeypatch.setattr(paths, "S3_MAX_ATTEMPTS", 1)
    with pytest.raises(OSError, match="(?i)slow ?down|503|reduce your request rate"):
        read_bytes(through_proxy)
