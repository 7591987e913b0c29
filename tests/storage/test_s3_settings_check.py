"""Choosing the S3 store in the settings, and ``callvault check``'s bucket check (issue 13)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from callvault.check import check_storage, findings
from callvault.settings import SettingsError, load_settings
from callvault.storage.blobs import LocalBlobStore
from callvault.storage.factory import make_blob_store
from callvault.storage.outbox import OutboxBlobStore
from callvault.storage.s3 import S3BlobStore
from tests.storage.conftest import s3_settings
from tests.storage.s3_server import S3Server


def test_the_settings_choose_the_store(s3: S3Server, tmp_path: Path) -> None:
    assert isinstance(make_blob_store(load_settings(data_dir=tmp_path)), LocalBlobStore)
    outbox = make_blob_store(s3_settings(s3.url, tmp_path, "my-bucket"))
    assert isinstance(outbox, OutboxBlobStore)  # finished blobs reach the disk first
    assert outbox.root == tmp_path / "outbox"
    store = outbox.remote
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == ("my-bucket", "rec/")
    direct = make_blob_store(s3_settings(s3.url, tmp_path, "my-bucket", s3_outbox=False))
    assert isinstance(direct, S3BlobStore)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"blob_store": "s3"}, "needs s3_bucket"),
        ({"s3_access_key_id": "AKIA"}, "set together"),
        ({"s3_bucket": "Not_A_Bucket"}, "s3_bucket"),
        ({"s3_prefix": "recordings"}, "s3_prefix"),  # a prefix ends with "/"
        ({"s3_prefix": "a/../"}, "'..'"),
        ({"s3_endpoint_url": "ftp://s3.example"}, "s3_endpoint_url"),
    ],
)
def test_invalid_s3_settings_are_refused(values: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(None, **values)


def test_the_secret_key_is_never_shown(s3: S3Server, tmp_path: Path) -> None:
    settings = s3_settings(s3.url, tmp_path, s3.new_bucket())
    assert "testing-secret" not in repr(settings) and "testing-secret" not in str(settings)
    assert all("testing-secret" not in f.line() for f in findings(settings))


def test_check_finds_the_bucket_usable(s3: S3Server, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    found = list(check_storage(s3_settings(s3.url, tmp_path, bucket)))
    assert [(f.level, f.subject) for f in found] == [("ok", "blob store")], found
    assert f"bucket {bucket}" in found[0].message
    puts = [r for r in s3.requests("PUT") if "/callvault-check/" in r.path]
    deletes = [r for r in s3.requests("DELETE") if "/callvault-check/" in r.path]
    assert len(puts) == 1 and len(deletes) == 1  # the probe object is gone again
    assert not (tmp_path / "blobs").exists()  # no local blob directory is asked for


def test_check_warns_of_a_versioned_bucket(s3: S3Server, tmp_path: Path) -> None:
    found = list(check_storage(s3_settings(s3.url, tmp_path, s3.new_bucket(versioned=True))))
    assert [f.level for f in found] == ["warning", "ok"]
    assert "old versions (Enabled)" in found[0].message


def test_check_reports_a_missing_bucket(s3: S3Server, tmp_path: Path) -> None:
    found = list(check_storage(s3_settings(s3.url, tmp_path, "no-such-bucket-here")))
    assert [f.level for f in found] == ["error"]
    assert "no-such-bucket-here" in found[0].message


def test_check_reports_an_unreachable_store(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    found = list(check_storage(s3_settings(url, tmp_path, "some-bucket", s3_timeout_s=2)))
    assert [f.level for f in found] == ["error"]
    assert "is not usable" in found[0].message and url in found[0].message
