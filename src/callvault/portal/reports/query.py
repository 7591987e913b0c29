"""The report query: filters, the opaque cursor and the plan of a page of calls.

``ReportParams`` is the query string of Reports › Calls and the recordings
list, read by one parser whether it comes to the API (a FastAPI dependency,
``http.ReportQueryDep``) or to the page (``parse_report_query``); both give a
``ReportQuery``: the validated ``ReportFilters`` and the cursor.

Both lists page by keyset on (time desc, id desc), never OFFSET, so a deep
page costs what the first one does. The cursor is opaque: base64url of the
last row's position and a checksum over that position, the list it belongs to
and the filters it was made with. A cursor that was altered, or is replayed
with other filters, is refused with 422 ``bad-cursor``. (A forged cursor can
only move the caller within rows they may see anyway: every scope is
re-applied from the request.)
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    SQLColumnExpression,
    exists,
    false,
    func,
    or_,
    select,
    tuple_,
    union,
    union_all,
)
from sqlalchemy.orm import Session

from callvault.db.hints import unindexed
from callvault.db.models import Call, Recording, RecordingLabel, Tenant
from callvault.errors import ErrorId, InvalidInput
from callvault.portal import visibility
from callvault.portal.query_string import parse_query
from callvault.tenants.numbers import to_e164

_NUMBER_CHARS = re.compile(r"[\s\-().]")
_DIGITS = re.compile(r"\+?[0-9]{1,20}")

Direction = Literal["inbound", "outbound", "internal"]


class ReportParams(BaseModel):
    """The query string of both lists, by its names on the wire (``from``, ``to``)."""

    model_config = ConfigDict(populate_by_name=True)

    cursor: str | None = Field(None, max_length=200, description="next_cursor of the previous page")
    since: datetime | None = Field(
        None, alias="from", description="calls started at or after (ISO 8601; no zone: UTC)"
    )
    until: datetime | None = Field(
        None, alias="to", description="calls started before (ISO 8601; no zone: UTC)"
    )
    user_id: int | None = Field(None, ge=1, description="a user who is a party of the call")
    number: str | None = Field(
        None, min_length=1, max_length=40, description="E.164 or digits; the caller or the callee"
    )
    direction: Direction | None = None
    label: str | None = Field(
        None, min_length=1, max_length=100, description="a label, case-insensitive"
    )
    recorded: bool | None = Field(None, description="only calls with (true) or without a recording")


def by_id_in(column: SQLColumnExpression[int], tenant_id: int) -> ColumnElement[bool]:
    """``column == tenant_id`` for look-ups by a list of ids: the same scope, but on
    SQLite no index can serve it, so that the planner uses the ids' index rather
    than walk every row of the tenant (SQLite has no statistics to tell which is
    smaller; PostgreSQL has, see ``db.hints``)."""
    return unindexed(column) == tenant_id


def normalise_label(text: str) -> str:
    """A label as annotations store it: trimmed, single spaces (case is kept)."""
    return " ".join(text.split())


def label_is(label: str) -> ColumnElement[bool]:
    """The label ``label``, in any case.

    Labels are stored with their case, so this compares ``lower()`` of both
    sides (the same function, so SQLite's ASCII-only folding agrees with
    itself); ``ix_recording_labels_tenant_lower_text`` makes it one look-up.
    """
    return func.lower(RecordingLabel.text) == func.lower(label)


def as_stored(value: datetime) -> datetime:
    """A bound for comparisons with stored times, which are UTC."""
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReportFilters:
    """The validated filters of one list request."""

    since: datetime | None = None
    until: datetime | None = None
    user_id: int | None = None
    number: str | None = None
    direction: str | None = None
    label: str | None = None
    recorded: bool | None = None

    @classmethod
    def parse(
        cls,
        tenant: Tenant,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        user_id: int | None = None,
        number: str | None = None,
        direction: str | None = None,
        label: str | None = None,
        recorded: bool | None = None,
    ) -> ReportFilters:
        since = as_stored(since) if since is not None else None
        until = as_stored(until) if until is not None else None
        if since is not None and until is not None and since >= until:
            raise InvalidInput("from: must be before to")
        if number is not None:
            number = _normalise_number(number, tenant.country_code)
        if label is not None:
            label = normalise_label(label)
            if not label:
                raise InvalidInput("label: must not be blank")
        return cls(since, until, user_id, number, direction, label, recorded)

    def fingerprint(self, kind: str) -> str:
        return repr((kind, *(getattr(self, f) for f in self.__dataclass_fields__)))


@dataclass(frozen=True)
class ReportQuery:
    """What one list request asks for: its filters and where the page starts."""

    filters: ReportFilters
    cursor: str | None = None


def report_query(tenant: Tenant, params: ReportParams) -> ReportQuery:
    """The validated query of ``tenant``'s lists (numbers read in its country)."""
    filters = ReportFilters.parse(
        tenant,
        since=params.since,
        until=params.until,
        user_id=params.user_id,
        number=params.number,
        direction=params.direction,
        label=params.label,
        recorded=params.recorded,
    )
    return ReportQuery(filters, params.cursor)


def parse_report_query(tenant: Tenant, query: Mapping[str, str]) -> ReportQuery:
    """A page's query string read as the API reads it; 422 naming the bad parameter."""
    return report_query(tenant, parse_query(ReportParams, query))


def _normalise_number(raw: str, country_code: str) -> str:
    """E.164 where the input is a full number; otherwise the digits (an extension)."""
    text = _NUMBER_CHARS.sub("", raw)
    if not _DIGITS.fullmatch(text):
        raise InvalidInput(f"number: {raw!r} is not a phone number (E.164 or digits)")
    return to_e164(text, country_code) or text


def _checksum(payload: str, fingerprint: str) -> str:
    return hashlib.blake2b(
        f"{payload}\n{fingerprint}".encode(), digest_size=9, person=b"cv-cursor-v1"
    ).hexdigest()


def encode_cursor(at: datetime, row_id: str, fingerprint: str = "") -> str:
    payload = f"{as_stored(at).isoformat()}|{row_id}"
    raw = f"{payload}|{_checksum(payload, fingerprint)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str = "") -> tuple[datetime, str]:
    bad = InvalidInput("cursor: not a cursor of this list and filters", error_id=ErrorId.BAD_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at_text, row_id, check = raw.split("|")
        at = datetime.fromisoformat(at_text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if check != _checksum(f"{at_text}|{row_id}", fingerprint) or at.tzinfo is None:
        raise bad
    return at.astimezone(UTC), row_id


# --- the plan of a page of calls -------------------------------------------------------


# A filter that selects few calls (a user's, a number's, a label's) is answered
# from its own index: its call ids are looked up and sorted ("driving set").
# Otherwise the calls are walked newest first on ix_calls_tenant_started (or
# _direction_started) and each one is checked, which stops after one page. The
# limits are where both cost about the same at 1 M calls (bench/calls_report.py):
# a lookup by id costs about ten steps of the ordered walk, and checking a party
# or a label costs a few more steps than comparing a number.
DRIVE_LIMITS = {"users": 3000, "label": 5000, "number": 2000}

# PostgreSQL: a set too big to drive may be read once into a hash
# (``coalesce(calls.id IN (set), false)``: a "hashed SubPlan", which keeps the
# walk in time order), each walked call then checked against the hash rather
# than probed in the set's index one call at a time. Hashing costs the set's
# size S; probing costs the calls walked for a page, page × N / S for a tenant
# of N calls, each a probe that costs HASH_GAIN times one row of the hash. So
# the set is hashed where S² < page × N × HASH_GAIN. The gain is a per-row cost
# measured with EXPLAIN ANALYZE (bench/calls_report.py --database postgresql;
# it does not depend on the tenant's size): probing a call's parties costs about
# 50 rows of a hashed set of calls read from ix_call_parties_tenant_user. At
# 10 M calls, a user's 55,000 calls are hashed (a page would probe 9,300
# calls), a team's 550,000 probed (one of theirs every 18 calls). A number's
# calls and a label's are not hashed but walked themselves, newest first, in
# their own indexes (``_by_number``, ``_by_label``: a label carries its call's
# start). SQLite cannot hash a subquery this way (it builds an index of it, row
# by row) and has no estimates: there it is the walk of the calls.
HASH_GAIN = {"users": 50.0}
HASHED_DIALECTS = frozenset({"postgresql"})


@dataclass(frozen=True)
class CallPagePlan:
    """How one page is fetched: ``driver`` names the driving set, None a walk in
    time order; ``walk`` what is walked (the calls, a number's calls, a label's);
    ``hashed`` the sets the walk checks against a hash of them."""

    driver: str | None
    query: Select[str, datetime]
    hashed: tuple[str, ...] = ()
    walk: Literal["calls", "number", "label"] = "calls"


def _driving_sets(
    tenant_id: int, users: visibility.UserIds, filters: ReportFilters
) -> dict[str, Select[str] | CompoundSelect[str]]:
    sets: dict[str, Select[str] | CompoundSelect[str]] = {}
    if users is not None:
        sets["users"] = visibility.calls_of_users(tenant_id, users)
    if filters.label is not None:
        # a label's calls, read from ix_recording_labels_tenant_lower_text alone
        sets["label"] = select(RecordingLabel.call_id).where(
            RecordingLabel.tenant_id == tenant_id, label_is(filters.label)
        )
    if filters.number is not None:
        sets["number"] = union_all(
            select(Call.id).where(Call.tenant_id == tenant_id, Call.from_number == filters.number),
            select(Call.id).where(Call.tenant_id == tenant_id, Call.to_number == filters.number),
        )
    return sets


def _call_conditions(
    tenant_id: int, users: visibility.UserIds, filters: ReportFilters, skip: set[str]
) -> list[ColumnElement[bool]]:
    """The filters as checks on one call, but for the sets in ``skip`` (the driving
    set, the hashed ones: the caller adds those)."""
    conditions: list[ColumnElement[bool]] = []
    driver = "users" if "users" in skip else None
    if users is not None and driver != "users":
        conditions.append(visibility.has_party(tenant_id, users, Call.id))
    if filters.since is not None:
        conditions.append(Call.started_at >= filters.since)
    if filters.until is not None:
        conditions.append(Call.started_at < filters.until)
    if filters.direction is not None:
        conditions.append(Call.direction == filters.direction)
    if filters.number is not None and "number" not in skip:
        conditions.append(or_(Call.from_number == filters.number, Call.to_number == filters.number))
    if filters.label is not None and "label" not in skip:
        # correlated on the call only (ix_recording_labels_call_id); labels
        # belong to their call's tenant
        conditions.append(
            exists(
                select(RecordingLabel.id).where(
                    RecordingLabel.call_id == Call.id, label_is(filters.label)
                )
            )
        )
    if filters.recorded is not None:
        has_recording = exists(select(Recording.call_id).where(Recording.call_id == Call.id))
        conditions.append(has_recording if filters.recorded else ~has_recording)
    return conditions


def worth_hashing(name: str, size: float, calls: float, limit: int) -> bool:
    """Whether the set ``name`` of ``size`` calls is cheaper hashed than probed call by
    call in a walk for ``limit`` calls of a tenant with ``calls`` (see HASH_GAIN)."""
    return size**2 < limit * calls * HASH_GAIN[name]


def estimated_rows(session: Session, query: Select[Any] | CompoundSelect[Any]) -> float:
    """How many rows PostgreSQL's statistics say ``query`` gives (its plan, not a count)."""
    connection = session.connection()
    compiled = query.compile(connection, compile_kwargs={"render_postcompile": True})
    plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
    return float(plan.scalar_one()[0]["Plan"]["Plan Rows"])


def plan_call_page(
    session: Session,
    tenant_id: int,
    users: visibility.UserIds,
    filters: ReportFilters,
    after: tuple[datetime, str] | None,
    limit: int,
) -> CallPagePlan:
    """(id, started_at) of one page of calls after ``after``, newest first."""
    sets = _driving_sets(tenant_id, users, filters)
    hashing = session.get_bind().dialect.name in HASHED_DIALECTS
    if hashing:
        # a number's calls are read in time order from its own two indexes
        # (``_by_number``), never sorted: PostgreSQL's statistics keep only the
        # commonest numbers, and it took a user's 55,000 calls for a few hundred
        sets.pop("number", None)
    driver: str | None = None
    smallest = 0
    counts: dict[str, float] = {}
    for name, ids in sets.items():
        cap = DRIVE_LIMITS[name]
        count = session.scalar(select(func.count()).select_from(ids.limit(cap + 1).subquery()))
        assert count is not None
        counts[name] = count
        if count <= cap and (driver is None or count < smallest):
            driver, smallest = name, count
    walk: Literal["calls", "number", "label"] = "calls"
    if hashing and driver is None and filters.label is not None:
        # a label's calls are read newest first from its own index (``_by_label``)
        walk = "label"
    elif hashing and driver is None and filters.number is not None:
        walk = "number"
    hashed: list[str] = []
    if hashing and driver is None and walk != "label":
        # a driving set's few calls are probed, not hashed; a label's walk meets
        # few calls too
        calls = estimated_rows(session, select(Call.id).where(Call.tenant_id == tenant_id))
        for name, counted in counts.items():
            size = max(counted, estimated_rows(session, sets[name]))
            if worth_hashing(name, size, calls, limit):
                hashed.append(name)
    skip = {*hashed, driver} if driver is not None else set(hashed)
    if walk != "calls":
        # the walked index states its own filter; said twice, PostgreSQL multiplied
        # the two estimates and read all of a number's calls for a page
        skip.add(walk)
    conditions = _call_conditions(tenant_id, users, filters, skip)
    # a set that is hashed is a plain membership test; coalesce() keeps PostgreSQL
    # from turning it into a join (which would lose the walk's order)
    conditions += [func.coalesce(Call.id.in_(sets[name]), false()) for name in hashed]
    if driver is None:
        conditions.insert(0, Call.tenant_id == tenant_id)
    else:
        # the same scope, written so that no index of calls can serve it: the
        # planner must start from the driving set's ids
        conditions[:0] = [unindexed(Call.tenant_id) == tenant_id, Call.id.in_(sets[driver])]
    if walk == "label":
        assert filters.label is not None
        by_label = _by_label(tenant_id, filters.label, conditions, after, limit)
        return CallPagePlan(None, by_label, walk=walk)
    if after is not None:
        conditions.append(tuple_(Call.started_at, Call.id) < tuple_(*after))
    if walk == "number":
        assert filters.number is not None
        by_number = _by_number(conditions, filters.number, limit)
        return CallPagePlan(None, by_number, tuple(hashed), walk)
    query = (
        select(Call.id, Call.started_at)
        .where(*conditions)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
    )
    return CallPagePlan(driver, query, tuple(hashed))


def _by_label(
    tenant_id: int,
    label: str,
    conditions: list[ColumnElement[bool]],
    after: tuple[datetime, str] | None,
    limit: int,
) -> Select[str, datetime]:
    """A page of the calls with ``label``, read newest first from
    ix_recording_labels_tenant_lower_text (a label carries its call's id and
    start) and checked against ``conditions`` on the call; a call labelled twice
    (two recordings, or "Sales" and "sales") once."""
    own = [RecordingLabel.tenant_id == tenant_id, label_is(label)]
    if after is not None:
        own.append(tuple_(RecordingLabel.started_at, RecordingLabel.call_id) < tuple_(*after))
    return (
        select(RecordingLabel.call_id, RecordingLabel.started_at)
        .join(Call, Call.id == RecordingLabel.call_id)
        .where(*own, *conditions)
        .distinct()
        .order_by(RecordingLabel.started_at.desc(), RecordingLabel.call_id.desc())
        .limit(limit)
    )


def _by_number(
    conditions: list[ColumnElement[bool]], number: str, limit: int
) -> Select[str, datetime]:
    """A page of the calls from or to ``number``: the newest ``limit`` of each side,
    each walked in time order on ix_calls_tenant_from_number / _to_number and
    checked against ``conditions`` (which leave the number to each side), then merged."""
    sides = [
        select(Call.id, Call.started_at)
        .where(side == number, *conditions)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
        .subquery()  # in parentheses: a compound's own parts may not be ordered
        for side in (Call.from_number, Call.to_number)
    ]
    # UNION: a call from the number to itself once
    both = union(*(select(side.c.id, side.c.started_at) for side in sides)).subquery()
    return (
        select(both.c.id, both.c.started_at)
        .order_by(both.c.started_at.desc(), both.c.id.desc())
        .limit(limit)
    )


def recording_conditions(
    tenant_id: int, users: visibility.UserIds, filters: ReportFilters
) -> list[ColumnElement[bool]]:
    """The filters as conditions on recordings (the recordings list)."""
    conditions = [visibility.recording_filter(tenant_id, users)]
    if filters.since is not None:
        # created_at >= started_at always, so this bound is safe and lets the
        # scan of ix_recordings_tenant_created stop at the period's start
        conditions += [Recording.started_at >= filters.since, Recording.created_at >= filters.since]
    if filters.until is not None:
        conditions.append(Recording.started_at < filters.until)
    call_conditions: list[ColumnElement[bool]] = []
    if filters.direction is not None:
        call_conditions.append(Call.direction == filters.direction)
    if filters.number is not None:
        call_conditions.append(
            (Call.from_number == filters.number) | (Call.to_number == filters.number)
        )
    if call_conditions:
        conditions.append(
            Recording.call_id.in_(
                select(Call.id).where(Call.tenant_id == tenant_id, *call_conditions)
            )
        )
    if filters.label is not None:
        conditions.append(
            Recording.id.in_(
                select(RecordingLabel.recording_id).where(
                    RecordingLabel.tenant_id == tenant_id, label_is(filters.label)
                )
            )
        )
    if filters.recorded is False:
        conditions.append(false())
    return conditions
