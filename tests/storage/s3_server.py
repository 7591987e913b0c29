"""A real S3 HTTP server for the tests: moto's server app on 127.0.0.1, a random port
(``S3Server``, in this process), or moto's standalone server as its own process
(``S3Process``, which a test can kill).

The app is wrapped in ``S3Server``'s WSGI layer, which logs every request the
way the server saw it (method, path, query, Range header, status, bytes
sent) and can answer chosen requests with an error instead of passing them
on (``fail``): an S3 outage or a store that ignores DELETE, seen by the client
over HTTP, with nothing in boto3 patched. One object refused by the server
itself is a bucket policy's deny (``deny_put``), which moto enforces.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.peers import require_module

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


@dataclass
class Logged:
    method: str
    path: str
    query: str
    range: str | None
    status: int = 0
    sent: int = 0


class S3Server:
    def __init__(self) -> None:
        require_module("moto", "an S3 server for the S3 blob store's tests (moto[server])")
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self._app = DomainDispatcherApplication(create_backend_app)
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        # (method, answer status, query part): the next requests of that method (whose query
        # string holds that part) are answered so
        self._failures: list[tuple[str, int, str, str]] = []
        self._server = make_server(
            "127.0.0.1", 0, self, threaded=True, request_handler=MotoRequestHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()

    def fail(
        self, method: str, status: int, times: int = 1, query: str = "", code: str = ""
    ) -> None:
        """Answer the next ``times`` requests of ``method`` (``*``: any) with ``status``;
        with ``query``, only requests whose query string contains it (``partNumber=2``);
        with ``code``, S3's XML error body naming it (else no body, as a HEAD's)."""
        with self._lock:
            self._failures.extend([(method, status, query, code)] * times)

    def calm(self) -> None:
        with self._lock:
            self._failures.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Logged]:
        with self._lock:
            return [
                r
                for r in self.log
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()

    def _client(self) -> Any:
        """A boto3 client of this server, for the test's own set-up."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self, *, versioned: bool = False) -> str:
        name = f"cv-{uuid.uuid4().hex[:20]}"
        client = self._client()
        client.create_bucket(Bucket=name)
        if versioned:
            client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        client.close()
        return name

    def deny_put(self, bucket: str, *keys: str) -> None:
        """A bucket policy denying PutObject on ``keys`` (full object keys, prefix and all;
        ``*`` for the whole bucket): the server refuses those objects (403) and takes every
        other, until ``allow_all``."""
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:PutObject",
                    "Resource": [f"arn:aws:s3:::{bucket}/{key}" for key in keys],
                }
            ],
        }
        client = self._client()
        client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        client.close()

    def allow_all(self, bucket: str) -> None:
        """The bucket's policy removed: every object is taken again."""
        client = self._client()
        client.delete_bucket_policy(Bucket=bucket)
        client.close()

    def _failure(self, method: str, query: str) -> tuple[int, str] | None:
        with self._lock:
            for i, (wanted, status, part, code) in enumerate(self._failures):
                if wanted in (method, "*") and part in query:
                    del self._failures[i]
                    return status, code
        return None

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        entry = Logged(
            environ["REQUEST_METHOD"],
            environ.get("PATH_INFO", ""),
            environ.get("QUERY_STRING", ""),
            environ.get("HTTP_RANGE"),
        )
        with self._lock:
            self.log.append(entry)
        failed = self._failure(entry.method, entry.query)
        if failed is not None:
            entry.status, code = failed
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            body = b""
            if code and entry.method != "HEAD":
                body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
            headers = [("Content-Length", str(len(body))), ("Content-Type", "application/xml")]
            start_response(f"{entry.status} Injected", headers)
            return [body]
        return self._passed_on(entry, environ, start_response)

    def _passed_on(
        self, entry: Logged, environ: Environ, start_response: StartResponse
    ) -> Iterator[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            entry.status = int(status.split()[0])
            return start_response(status, headers, exc_info)

        body = self._app(environ, start)
        try:
            for chunk in body:
                entry.sent += len(chunk)
                yield chunk
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


class S3Process:
    """moto's standalone S3 server as a process of its own on a fixed loopback port: the
    outage test kills it (SIGKILL) and starts a fresh one on the same port.

    A fresh moto knows nothing (no persistence): ``create_bucket`` again after a start.
    Its request log (werkzeug's, one line per request with the status) is ``log_file``.
    """

    def __init__(self, log_file: Path) -> None:
        require_module("moto", "an S3 server for the S3 outbox's tests (moto[server])")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # until it accepts connections
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log_file.read_text()[-2000:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("moto server did not start")

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def create_bucket(self, name: str) -> str:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=name)
        client.close()
        return name

    def requests(self) -> list[str]:
        """The request lines moto logged so far (``GET /bucket/key HTTP/1.1" 206``)."""
        return [line for line in self.log_file.read_text().splitlines() if '" ' in line]
