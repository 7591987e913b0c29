"""The blob store the settings choose (``blob_store``: ``local`` or ``s3``; issue 13).

With ``s3`` the bucket sits behind the outbox (``storage/outbox.py``) unless
``s3_outbox`` is off: finished blobs reach the local disk first and are
uploaded by its drain, which the process running the store starts
(``start_drain``) and stops.
"""

from __future__ import annotations

from collections.abc import Callable

from callvault.metrics import Metrics
from callvault.settings import Settings
from callvault.storage.blobs import BlobStore, LocalBlobStore

# the outbox retries uploads itself: boto3's own retries only ride out a blip
OUTBOX_S3_ATTEMPTS = 2


def make_blob_store(settings: Settings, metrics: Metrics | None = None) -> BlobStore:
    """The local directory store under ``data_dir``, or the S3 bucket the settings name
    (through the outbox, whose backlog and uploads show in ``metrics``)."""
    if settings.blob_store == "s3":
        from callvault.storage.s3 import S3BlobStore  # boto3 loads only when S3 is chosen

        if not settings.s3_outbox:
            return S3BlobStore.from_settings(settings)
        from callvault.storage.outbox import OutboxBlobStore

        return OutboxBlobStore(
            settings.data_dir / "outbox",
            S3BlobStore.from_settings(settings, attempts=OUTBOX_S3_ATTEMPTS),
            (metrics or Metrics()).outbox,
            retry_max_s=settings.s3_outbox_retry_max_s,
        )
    return LocalBlobStore(settings.blob_dir)


def start_drain(store: BlobStore) -> Callable[[], None]:
    """Starts the outbox's upload drain when ``store`` has one; returns what stops it."""
    from callvault.storage.outbox import OutboxBlobStore

    if isinstance(store, OutboxBlobStore):
        store.start()
        return store.close
    return lambda: None
