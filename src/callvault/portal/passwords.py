"""Portal passwords: argon2id hashes, the length rule, and login throttling.

Hashes use argon2-cffi's defaults (argon2id, RFC 9106 low-memory profile);
``verify`` reports when a stored hash was made with weaker parameters so the
caller can store a fresh one while it still holds the plain password.

Throttling counts failed ``LoginAttempt`` rows in a sliding window, per login
name and per remote address; the current time is always passed in.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callvault.db.models import LoginAttempt
from callvault.errors import ApiError, InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 1024  # argon2 takes anything, but a megabyte "password" is a DoS
WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_LOGIN = 5
MAX_FAILURES_PER_ADDRESS = 20

_hasher = PasswordHasher()


class LoginThrottled(ApiError):
    """Too many failed logins; ``headers`` carries Retry-After for the HTTP answer."""

    status = 429
    error_id = "login-throttled"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} seconds")
        self.headers = {"Retry-After": str(retry_after)}


def check_new_password(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            f"the password must have at least {MIN_LENGTH} characters",
            error_id="password-too-short",
        )
    if len(password) > MAX_LENGTH:
        raise InvalidInput(
            f"the password may have at most {MAX_LENGTH} characters", error_id="password-too-long"
        )


def hash_password(password: str) -> str:
    check_new_password(password)
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
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
        # same work as a real check, so that unknown logins cannot be told apart by timing
        with contextlib.suppress(VerificationError):
            _hasher.verify(_dummy_hash(), password)
        return Verified(False)
    try:
        _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verified(False)
    if _hasher.check_needs_rehash(stored_hash):
        return Verified(True, _hasher.hash(password))
    return Verified(True)


def normalise_login(login: str) -> str:
    return login.strip().lower()


def _retry_after(times: list[datetime], limit: int, now: datetime) -> int | None:
    """Seconds until fewer than ``limit`` failures remain in the window; None: not throttled."""
    if len(times) < limit:
        return None
    times = sorted(times)
    # the failure whose ageing-out brings the count back under the limit
    pivot = times[len(times) - limit]
    return max(1, math.ceil((pivot + WINDOW - now).total_seconds()))


def _aware(value: datetime, like: datetime) -> datetime:
    return value.replace(tzinfo=like.tzinfo) if value.tzinfo is None else value


def check_throttle(session: Session, login: str, remote_addr: str | None, now: datetime) -> None:
    """Raise ``LoginThrottled`` when this login or this address failed too often lately."""
    since = now - WINDOW
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.login == login, LoginAttempt.success.is_(True)
        )
    )
    login_since = max(since, _aware(last_success, now)) if last_success is not None else since
    by_login = [
        _aware(at, now)
        for at in session.scalars(
            select(LoginAttempt.at).where(
                LoginAttempt.login == login,
                LoginAttempt.success.is_(False),
                LoginAttempt.at > login_since,
            )
        )
    ]
    waits = [_retry_after(by_login, MAX_FAILURES_PER_LOGIN, now)]
    if remote_addr is not None:
        by_address = [
            _aware(at, now)
            for at in session.scalars(
                select(LoginAttempt.at).where(
                    LoginAttempt.remote_addr == remote_addr,
                    LoginAttempt.success.is_(False),
                    LoginAttempt.at > since,
                )
            )
        ]
        waits.append(_retry_after(by_address, MAX_FAILURES_PER_ADDRESS, now))
    longest = max((w for w in waits if w is not None), default=None)
    if longest is not None:
        raise LoginThrottled(longest)


def record_attempt(
    session: Session, login: str, remote_addr: str | None, now: datetime, *, success: bool
) -> None:
    session.add(LoginAttempt(login=login[:200], remote_addr=remote_addr, at=now, success=success))
