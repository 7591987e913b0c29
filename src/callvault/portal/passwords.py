"""Portal passwords: argon2id hashes, the length rule, bounded hashing, login backoff.

Hashes use argon2-cffi's defaults (argon2id, RFC 9106 low-memory profile:
64 MiB per hash); ``verify`` reports when a stored hash was made with weaker
parameters so the caller can store a fresh one while it still holds the plain
password. At most ``HASHING_SLOTS`` hashes run at once in this process (it
also captures RTP): further logins queue for a slot, and after
``HASHING_WAIT`` answer 503 ``login-busy``. Unknown logins hash a dummy
password in the same slots, so their timing matches a wrong password.

Backoff (``begin_attempt`` / ``attempt_succeeded``): every attempt is counted
*before* the password is checked, per (login, client address) and per client
address, in one guarded UPDATE that also sets ``blocked_until`` (see
``LoginThrottle``). The first ``FREE_PER_PAIR`` attempts of a pair pass; then
each one must wait twice as long as the last (``FIRST_DELAY`` up to
``MAX_DELAY``). So a burst of concurrent wrong passwords gets exactly the free
checks, and someone at another address cannot lock the real user out. A
counter is forgotten after ``FORGET_AFTER`` without failures. The current time
is always passed in.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import CursorResult, DateTime, and_, case, delete, literal, null, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callvault.db.models import LoginThrottle
from callvault.errors import ApiError, ErrorId, InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 takes anything, but a megabyte "password" is a DoS
HASHING_SLOTS = 2  # 2 x 64 MiB at most, whatever the number of concurrent logins
HASHING_WAIT = 20.0  # seconds a login may queue for a slot before 503
FREE_PER_PAIR = 5
FREE_PER_ADDRESS = 20
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=15)
FORGET_AFTER = timedelta(hours=1)
PAIR, ADDRESS = "pair", "address"

_hasher = PasswordHasher()
_slots = threading.BoundedSemaphore(HASHING_SLOTS)


class LoginThrottled(ApiError):
    """Too many failed logins; ``headers`` carries Retry-After for the HTTP answer."""

    error_id = ErrorId.LOGIN_THROTTLED

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.headers = {"Retry-After": str(retry_after)}


class LoginBusy(ApiError):
    """Every hashing slot stayed taken for ``HASHING_WAIT`` seconds."""

    error_id = ErrorId.LOGIN_BUSY

    def __init__(self) -> None:
        super().__init__("too many logins at once; try again in a moment")
        self.headers = {"Retry-After": "5"}


@contextlib.contextmanager
def hashing_slot() -> Iterator[None]:
    """One of the ``HASHING_SLOTS``; blocks the calling worker thread until one is free."""
    if not _slots.acquire(timeout=HASHING_WAIT):
        raise LoginBusy()
    try:
        yield
    finally:
        _slots.release()


def check_new_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"the password must have at least {MIN_LENGTH} characters",
            error_id=ErrorId.PASSWORD_TOO_SHORT,
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(
            f"the password may have at most {MAX_LENGTH} characters",
            error_id=ErrorId.PASSWORD_TOO_LONG,
        )


def hash_password(password: str) -> str:
    check_new_password(password)
    with hashing_slot():
        return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    with hashing_slot():
        return _hasher.hash("not the password of anyone")


@dataclass(frozen=True)
class Verified:
    ok: bool
    new_hash: str | None = None  # set when the stored hash should be replaced


def verify_password(stored_hash: str | None, password: str) -> Verified:
    """Check ``password``; with no stored hash, spend the same time and fail."""
    if len(password) > MAX_LENGTH:
        return Verified(False)
    if stored_hash is None:
        dummy = _dummy_hash()
        # same work (and same queue) as a real check: unknown logins cannot be told by timing
        with hashing_slot(), contextlib.suppress(VerificationError):
            _hasher.verify(dummy, password)
        return Verified(False)
    with hashing_slot():
        try:
            _hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verified(False)
        if _hasher.check_needs_rehash(stored_hash):
            return Verified(True, _hasher.hash(password))
    return Verified(True)


def normalise_login(login: str) -> str:
    return login.strip().lower()


# --- backoff ---------------------------------------------------------------------------


def _delay(n: int) -> timedelta:
    """The wait after the ``n``-th counted attempt beyond the free ones (0-based)."""
    return min(FIRST_DELAY * (1 << n), MAX_DELAY)


_STEPS = math.ceil(math.log2(MAX_DELAY / FIRST_DELAY)) + 1  # delays before MAX_DELAY


def _ensure_row(session: Session, kind: str, login: str, address: str) -> None:
    values = {"kind": kind, "login": login, "remote_addr": address, "failures": 0}
    keys = ["kind", "login", "remote_addr"]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(
            postgresql.insert(LoginThrottle)
            .values(values)
            .on_conflict_do_nothing(index_elements=keys)
        )
    elif dialect == "sqlite":
        session.execute(
            sqlite.insert(LoginThrottle).values(values).on_conflict_do_nothing(index_elements=keys)
        )
    else:  # pragma: no cover - the schema supports SQLite and PostgreSQL only
        raise NotImplementedError(dialect)


def _count(session: Session, kind: str, login: str, address: str, free: int, now: datetime) -> bool:
    """Count one attempt unless blocked; False when blocked. One atomic UPDATE."""
    row = LoginThrottle
    stamp = DateTime(timezone=True)
    stale = or_(row.last_failure_at.is_(None), row.last_failure_at < now - FORGET_AFTER)
    counted = case((stale, 1), else_=row.failures + 1)
    blocked_until: Any = case(
        (counted < free, null()),
        *((counted == free + n, literal(now + _delay(n), stamp)) for n in range(_STEPS)),
        else_=literal(now + MAX_DELAY, stamp),
    )
    result = cast(
        "CursorResult[Any]",
        session.execute(
            sql_update(row)
            .where(
                row.kind == kind,
                row.login == login,
                row.remote_addr == address,
                or_(row.blocked_until.is_(None), row.blocked_until <= now),
            )
            .values(failures=counted, last_failure_at=now, blocked_until=blocked_until)
            .execution_options(synchronize_session=False)
        ),
    )
    return result.rowcount == 1


def _retry_after(session: Session, kind: str, login: str, address: str, now: datetime) -> int:
    until = session.scalar(
        select(LoginThrottle.blocked_until).where(
            LoginThrottle.kind == kind,
            LoginThrottle.login == login,
            LoginThrottle.remote_addr == address,
        )
    )
    if until is None:
        return 1
    until = until.replace(tzinfo=now.tzinfo) if until.tzinfo is None else until
    return max(1, math.ceil((until - now).total_seconds()))


def begin_attempt(session: Session, login: str, remote_addr: str | None, now: datetime) -> None:
    """Count a login attempt before its password is checked; 429 when it must wait.

    Commits (the session must have nothing pending), so that no database lock is
    held while the password is hashed.
    """
    address = (remote_addr or "")[:64]
    login = login[:200]
    checks = ((PAIR, login, FREE_PER_PAIR), (ADDRESS, "", FREE_PER_ADDRESS))
    for kind, key, free in checks:
        _ensure_row(session, kind, key, address)
        if not _count(session, kind, key, address, free, now):
            wait = _retry_after(session, kind, key, address, now)
            session.commit()
            raise LoginThrottled(wait)
    session.commit()


def attempt_succeeded(session: Session, login: str, remote_addr: str | None) -> None:
    """The password was right: forget the pair's count, take this attempt off the address's."""
    address = (remote_addr or "")[:64]
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.kind == PAIR,
            LoginThrottle.login == login[:200],
            LoginThrottle.remote_addr == address,
        )
    )
    session.execute(
        sql_update(LoginThrottle)
        .where(
            and_(
                LoginThrottle.kind == ADDRESS,
                LoginThrottle.login == "",
                LoginThrottle.remote_addr == address,
                LoginThrottle.failures > 0,
            )
        )
        .values(failures=LoginThrottle.failures - 1)
        .execution_options(synchronize_session=False)
    )


def forget_stale(session: Session, now: datetime) -> None:
    """Housekeeping: drop counters that would start again anyway."""
    session.execute(
        delete(LoginThrottle).where(
            LoginThrottle.last_failure_at < now - FORGET_AFTER,
            or_(LoginThrottle.blocked_until.is_(None), LoginThrottle.blocked_until <= now),
        )
    )
