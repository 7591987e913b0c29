"""The blob store the settings choose (``blob_store``: ``local`` or ``s3``; issue 13)."""

from __future__ import annotations

from callvault.settings import Settings
from callvault.storage.blobs import BlobStore, LocalBlobStore


def make_blob_store(settings: Settings) -> BlobStore:
    """The local directory store under ``data_dir``, or the S3 bucket the settings name."""
    if settings.blob_store == "s3":
        from callvault.storage.s3 import S3BlobStore  # boto3 loads only when S3 is chosen

        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(settings.blob_dir)
