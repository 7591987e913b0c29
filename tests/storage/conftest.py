from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from callvault.settings import Settings, load_settings
from tests.storage.s3_server import S3Server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Server]:
    """The server with a clean request log and no failures left by another test."""
    s3_server.calm()
    s3_server.clear_log()
    yield s3_server
    s3_server.calm()


def s3_settings(url: str, data_dir: Path, bucket: str, **more: object) -> Settings:
    """Settings for the S3 store at ``url`` (the test server's, or a closed port)."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "blob_store": "s3",
        "s3_endpoint_url": url,
        "s3_bucket": bucket,
        "s3_region": "us-east-1",
        "s3_access_key_id": "testing",
        "s3_secret_access_key": "testing-secret",
        "s3_prefix": "rec/",
    }
    values.update(more)
    return load_settings(None, **values)  # no settings file: these values only
