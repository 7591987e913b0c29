"""The databases a portal suite runs on: SQLite, and PostgreSQL (issue 13, SPEC section 10).

The API and policy suites run every test that touches the database twice, ids
``[sqlite]`` and ``[postgresql]``: their conftests call ``parametrize_databases``
from ``pytest_generate_tests``, which parametrises the ``world`` fixture
indirectly. Suites that borrow ``world`` without that hook get SQLite only.
A test that is about SQLite itself (its query plans, its file) says so with
``@pytest.mark.sqlite_only("why")``.

PostgreSQL is a throw-away server from Debian's binaries on a loopback port,
one per pytest session whichever suites ask for it (``postgres_server``); it is
a peer (tests/peers.py): missing, it skips locally and fails with ``CI=true``.

Speed: migrations run once per kind and session, never per test. SQLite copies
a migrated template file; PostgreSQL creates each test's database from a
migrated template database (``CREATE DATABASE ... TEMPLATE``) and drops it after.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from callvault.db.engine import migrate
from tests.peers import missing

KINDS = ("sqlite", "postgresql")
SQLITE_ONLY = "sqlite_only"


def register_marker(config: pytest.Config) -> None:
    """Declares ``sqlite_only`` (the suite turns unknown markers into errors)."""
    config.addinivalue_line(
        "markers", f"{SQLITE_ONLY}(why): a test about SQLite itself, not run on PostgreSQL"
    )


def parametrize_databases(metafunc: pytest.Metafunc, fixture: str = "world") -> None:
    """Runs a test using ``fixture`` once per database kind (indirectly, as its param)."""
    if fixture not in metafunc.fixturenames:
        return
    kinds: tuple[str, ...] = KINDS
    if metafunc.definition.get_closest_marker(SQLITE_ONLY) is not None:
        kinds = ("sqlite",)
    metafunc.parametrize(fixture, kinds, indirect=True, ids=kinds)


def kind_of(request: pytest.FixtureRequest) -> str:
    """The database kind a ``world``-like fixture was parametrised with; SQLite if none."""
    kind = str(getattr(request, "param", "sqlite"))
    assert kind in KINDS, kind
    return kind


# --- the PostgreSQL server ---------------------------------------------------------


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running throw-away cluster; ``url`` names its ``postgres`` database."""

    url: str
    root: str
    data: str
    pg_ctl: str
    as_user: list[str]

    @classmethod
    def start(cls) -> PostgresServer:
        initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            missing("PostgreSQL server binaries initdb/pg_ctl (Debian package postgresql)")
        root = tempfile.mkdtemp(prefix="callvault-pg-")
        data = os.path.join(root, "data")
        port = _free_port()
        as_user: list[str] = []
        if os.geteuid() == 0:  # postgres refuses to run as root
            shutil.chown(root, "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_user, initdb, "-D", data, "-U", "callvault", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )
        # Durability is not under test: without fsync a test database costs milliseconds.
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            [*as_user, pg_ctl, "-D", data, "-o", options, "-w", "-l", f"{root}/log", "start"],
            check=True,
            capture_output=True,
        )
        server = cls(
            f"postgresql+psycopg://callvault@127.0.0.1:{port}/postgres", root, data, pg_ctl, as_user
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server
            except OSError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, self.pg_ctl, "-D", self.data, "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.root, ignore_errors=True)


_SERVER = pytest.StashKey[PostgresServer]()
_DATABASES = pytest.StashKey["PostgresDatabases"]()


def postgres_server(config: pytest.Config) -> PostgresServer:
    """The session's one PostgreSQL server, started at the first ask, stopped at the end."""
    if _SERVER not in config.stash:
        server = PostgresServer.start()
        config.stash[_SERVER] = server
        config.add_cleanup(server.stop)
    return config.stash[_SERVER]


@dataclass
class PostgresDatabases:
    """Fresh, migrated databases on one PostgreSQL server, copies of a migrated template."""

    admin_url: str
    template: str = "callvault_template"
    _migrated: bool = False
    _numbers: Iterator[int] = field(default_factory=itertools.count)

    def _admin(self) -> Engine:
        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT")

    def _url(self, name: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + f"/{name}"

    @contextmanager
    def fresh(self) -> Iterator[str]:
        """A new database, a copy of the migrated template; dropped on exit."""
        name = f"callvault_test_{next(self._numbers)}"
        admin = self._admin()
        try:
            with admin.connect() as connection:
                if not self._migrated:
                    connection.execute(text(f"DROP DATABASE IF EXISTS {self.template}"))
                    connection.execute(text(f"CREATE DATABASE {self.template}"))
                    migrate(self._url(self.template))  # its engine is gone when this returns
                    self._migrated = True
                connection.execute(text(f"CREATE DATABASE {name} TEMPLATE {self.template}"))
            yield self._url(name)
        finally:
            with admin.connect() as connection:  # FORCE: a leaked connection must not keep it
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            admin.dispose()


def postgres_databases(config: pytest.Config) -> PostgresDatabases:
    """The session's template and fresh databases on ``postgres_server``."""
    if _DATABASES not in config.stash:
        config.stash[_DATABASES] = PostgresDatabases(postgres_server(config).url)
    return config.stash[_DATABASES]


# --- SQLite ------------------------------------------------------------------------


class SqliteTemplate:
    """A migrated SQLite file, made once per process and copied for each test."""

    def __init__(self) -> None:
        self._file: Path | None = None

    def fresh(self, directory: Path) -> str:
        if self._file is None:
            root = Path(tempfile.mkdtemp(prefix="callvault-sqlite-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
            url = f"sqlite:///{root / 'template.sqlite'}"
            migrate(url)  # closes its connections: the file alone is the database
            self._file = root / "template.sqlite"
        target = directory / "db.sqlite"
        shutil.copyfile(self._file, target)
        return f"sqlite:///{target}"


_SQLITE = SqliteTemplate()


@contextmanager
def database_url(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A fresh, migrated database of the kind ``request`` was parametrised with."""
    if kind_of(request) == "sqlite":
        yield _SQLITE.fresh(directory)
        return
    with postgres_databases(request.config).fresh() as url:
        yield url
