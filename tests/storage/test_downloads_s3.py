"""Export and deletion-receipt downloads when S3 does not answer (issue 13): a 503
``storage-unavailable``, as the audio route answers, never a 500; a part still in
the outbox downloads from the local disk through the outage.

The API suite's two-tenant world, its app rebuilt on the S3 store (or the
outbox in front of it) talking HTTP to the tests' S3 server, which answers
503 to everything while "down".
"""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from callvault.db.models import DeletionReceipt, Export
from callvault.metrics import OutboxMetrics
from callvault.portal.app import create_app
from callvault.portal.context import PortalContext
from callvault.storage.blobs import BlobStore
from callvault.storage.outbox import OutboxBlobStore
from callvault.storage.s3 import S3BlobStore
from tests.api import conftest as api
from tests.api.conftest import World
from tests.api.test_matrix import deletion_receipt, ready_export
from tests.storage.conftest import s3_settings
from tests.storage.s3_server import S3Server

world = api.world


def _remote(s3: S3Server, tmp_path: Path) -> S3BlobStore:
    return S3BlobStore.from_settings(s3_settings(s3.url, tmp_path, s3.new_bucket()), attempts=1)


def _export_url(world: World, export_id: str) -> str:
    return f"/api/v1/tenants/{world.tenant_a}/exports/{export_id}/files/1"


def _blob_key(world: World, export_id: str) -> str:
    with world.sessions() as session:
        export = session.get(Export, export_id)
        assert export is not None
        return export.files[0].blob_key


def _moved(world: World, key: str, store: BlobStore) -> None:
    """The blob out of the world's local store into ``store``."""
    store.put(key, world.blobs.read(key))
    world.blobs.delete(key)


def test_an_export_download_during_an_s3_outage_is_a_503(
    world: World, s3: S3Server, tmp_path: Path
) -> None:
    export_id = ready_export(world, foreign=False)
    store = _remote(s3, tmp_path)
    _moved(world, _blob_key(world, export_id), store)
    s3.fail("*", 503, times=20)
    with TestClient(create_app(PortalContext(world.sessions, store))) as client:
        r = client.get(_export_url(world, export_id), headers=world.auth("a_admin"))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["id"] == "storage-unavailable"


def test_a_receipt_download_during_an_s3_outage_is_a_503(
    world: World, s3: S3Server, tmp_path: Path
) -> None:
    receipt_id = deletion_receipt(world, foreign=False)
    store = _remote(s3, tmp_path)
    url = f"/api/v1/tenants/{world.tenant_a}/deletion-receipts/{receipt_id}/download"
    with TestClient(create_app(PortalContext(world.sessions, store))) as client:
        with world.sessions() as session:
            receipt = session.get(DeletionReceipt, receipt_id)
            assert receipt is not None and receipt.blob_key is not None
            _moved(world, receipt.blob_key, store)
        assert client.get(url, headers=world.auth("a_admin")).status_code == 200  # S3 up
        s3.fail("*", 503, times=20)
        r = client.get(url, headers=world.auth("a_admin"))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["id"] == "storage-unavailable"


def test_an_export_part_still_in_the_outbox_downloads_during_the_outage(
    world: World, s3: S3Server, tmp_path: Path
) -> None:
    export_id = ready_export(world, foreign=False)
    key = _blob_key(world, export_id)
    data = world.blobs.read(key)
    outbox = OutboxBlobStore(tmp_path / "outbox", _remote(s3, tmp_path), OutboxMetrics())
    s3.fail("*", 503, times=20)
    _moved(world, key, outbox)
    assert outbox.drain_once() == 0  # S3 is down: the part waits on the disk
    with TestClient(create_app(PortalContext(world.sessions, outbox))) as client:
        r = client.get(_export_url(world, export_id), headers=world.auth("a_admin"))
    assert r.status_code == 200, r.text
    assert r.content == data
