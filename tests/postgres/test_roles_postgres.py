"""Roles on PostgreSQL (issue 13): the directory reaches another node through
LISTEN/NOTIFY and the version poll; several nodes may migrate at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from callvault.app import migrate_once
from callvault.db.engine import make_engine, make_sessionmaker
from callvault.roles.directory import DirectoryWatcher, directory_version
from tests.roles.nodes import a_user_added_on_web_is_seen_by_media, within


def _fresh(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("drop schema public cascade; create schema public"))
    engine.dispose()


async def test_a_change_on_the_web_node_reaches_the_media_node_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    _fresh(postgres_url)
    assert await a_user_added_on_web_is_seen_by_media(tmp_path, database_url=postgres_url) < 1.0


async def test_notify_wakes_the_watcher_before_its_poll(postgres_url: str) -> None:
    """With the poll an hour away, only the trigger's NOTIFY can bring the reload."""
    _fresh(postgres_url)
    await asyncio.gather(*(asyncio.to_thread(migrate_once, postgres_url) for _ in range(3)))
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    reloads: list[int] = []
    seen = directory_version(sessions)
    watcher = DirectoryWatcher(
        sessions, lambda: reloads.append(1), db_url=postgres_url, seen=seen, poll_s=3600
    )
    task = asyncio.ensure_future(watcher.run())
    try:
        await within(5.0, lambda: watcher.listening)
        with engine.begin() as connection:
            connection.execute(text("insert into tenants (name, country_code, suspended,"
                " created_at, language, plan, retention_days, stream_only, bulk_download,"
                " short_code, pause_mode, channels, timezone, store_in_portal, announce_start,"
                " announce_stop, announce_after_transfer, hide_code_from_other,"
                " supervisor_in_recording) values ('Acme', '31', false, now(), 'nl',"
                " 'standard', 7, false, false, '*1', 'cut', 'both', 'Europe/Amsterdam', true,"
                " true, true, false, false, false)"))  # fmt: skip
        await within(1.0, lambda: bool(reloads))
        assert watcher.seen == seen + 1 == directory_version(sessions)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        engine.dispose()
