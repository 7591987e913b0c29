"""The cluster's peers: the session's PostgreSQL server (a fresh database per test) and
moto's S3 server over HTTP."""

from __future__ import annotations

import uuid

import pytest

from tests.peers import require_module
from tests.postgres.conftest import postgres_url
from tests.storage.conftest import s3_server

__all__ = ["cluster_db", "postgres_url", "s3_server"]


@pytest.fixture
def cluster_db(postgres_url: str) -> str:
    """A database of its own on the shared server: other tests seed the same names."""
    psycopg = require_module("psycopg", "the PostgreSQL driver (scripts/setup.sh --test)")
    name = f"cluster_{uuid.uuid4().hex[:12]}"
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + f"/{name}"
