"""Users in bulk: CSV import and export for the tenant admin and the operator (issue 15 part 3).

``GET /api/v1/tenants/{t}/users.csv`` writes the tenant's users (those with
an extension: the import's key) in the format of ``users_csv_format``;
``POST`` the same path with a ``text/csv`` body creates the users whose
extension is new and updates those whose extension exists. Users not in the
file are left as they are.

The whole file is checked before anything changes, and every bad line is
answered at once (422 ``users-csv-invalid``, ``error.lines``: line number
and reason). Besides the format: numbers and AORs must lie in the tenant's
own domains, numbers and blocks (``tenants.claims``, the one check for API and
CLI, so a foreign tenant's address gets the same answer as nobody's); an
extension, number or AOR appears on one line only and belongs to no other
user of the tenant who is not in the file; teams exist; an admin keeps their
own admin role; putting users on the recording list needs the legal notice
accepted (as the plus button in Settings › Recording does). Then all changes
are made in one transaction, with one audit row (``users.import``) holding
the counts. ``?dry_run=true`` checks and counts without changing anything.

A 500-user file costs a fixed number of queries for the checks; only the
address rows go through ``claims.set_user_addresses`` per user whose
addresses change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from callvault.db.models import Team, TeamMember, Tenant, User
from callvault.errors import ApiError, Conflict, ErrorId, InvalidInput
from callvault.portal.api.recording_settings import get_legal_notice
from callvault.portal.api.users_csv_format import (
    MAX_BYTES,
    CsvTooLarge,
    LineError,
    UserLine,
    UserRecord,
    read_users_csv,
    write_users_csv,
)
from callvault.portal.audit import audit
from callvault.portal.auth import CurrentPrincipal, Principal, SessionDep
from callvault.portal.roles import AdminTenant
from callvault.tenants.claims import OutsideTenant, check_user_addresses, set_user_addresses
from callvault.tenants.service import new_user

router = APIRouter(prefix="/api/v1/tenants/{tenant_id}", tags=["users"])

CSV_TYPES = ("text/csv", "text/plain", "application/csv")
MAX_REPORTED_LINES = 1000  # a hopeless file still gets a bounded answer


class TooLarge(ApiError):
    error_id = ErrorId.CSV_TOO_LARGE


class UnsupportedType(ApiError):
    error_id = ErrorId.UNSUPPORTED_MEDIA_TYPE


class ImportOut(BaseModel):
    users: int
    created: int
    updated: int
    unchanged: int
    dry_run: bool


async def csv_body(request: Request) -> bytes:
    """The request body as sent (``text/csv``), read up to ``MAX_BYTES`` and no further."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in CSV_TYPES:
        raise UnsupportedType("send the file as the body with Content-Type: text/csv")
    limit_text = f"the file is larger than {MAX_BYTES // (1024 * 1024)} MiB"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BYTES:
        raise TooLarge(limit_text)
    chunks: list[bytes] = []
    size = 0
    stream: AsyncIterator[bytes] = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > MAX_BYTES:
            raise TooLarge(limit_text)
        chunks.append(chunk)
    return b"".join(chunks)


CsvBody = Annotated[bytes, Depends(csv_body)]


@dataclass
class _Plan:
    """What the file does to the tenant: each line with its user (None: a new one)."""

    lines: list[tuple[UserLine, User | None]] = field(default_factory=list)
    changed: set[int] = field(default_factory=set)  # indexes into lines
    teams: dict[str, Team] = field(default_factory=dict)
    members: dict[int, dict[int, TeamMember]] = field(default_factory=dict)  # user -> team -> row

    @property
    def created(self) -> int:
        return sum(1 for _line, user in self.lines if user is None)

    @property
    def updated(self) -> int:
        return sum(1 for i in self.changed if self.lines[i][1] is not None)


def _tenant_users(session: Session, tenant: Tenant) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .where(User.tenant_id == tenant.id)
            .options(selectinload(User.numbers), selectinload(User.aors))
            .order_by(User.name, User.id)
        )
    )


def _memberships(session: Session, tenant: Tenant) -> dict[int, dict[int, TeamMember]]:
    out: dict[int, dict[int, TeamMember]] = {}
    for member in session.scalars(select(TeamMember).where(TeamMember.tenant_id == tenant.id)):
        out.setdefault(member.user_id, {})[member.team_id] = member
    return out


def _team_ids(plan: _Plan, names: tuple[str, ...]) -> set[int]:
    return {plan.teams[n.casefold()].id for n in names}


def _differs(plan: _Plan, line: UserLine, user: User) -> bool:
    """Whether importing ``line`` changes ``user`` at all."""
    wanted: dict[str, Any] = {"name": line.name}
    if line.email is not None:
        wanted["email"] = line.email or None
    if line.role is not None:
        wanted["role"] = line.role
    if any(getattr(user, key) != value for key, value in wanted.items()):
        return True
    if line.numbers is not None and list(line.numbers) != [n.number for n in user.numbers]:
        return True
    if line.aors is not None and list(line.aors) != [a.aor for a in user.aors]:
        return True
    if line.teams is not None and _team_ids(plan, line.teams) != set(plan.members.get(user.id, {})):
        return True
    return line.mode is not None and _recording(line) != (user.recorded, _mode_of(user))


def _recording(line: UserLine) -> tuple[bool, str | None]:
    return (True, line.mode) if line.mode else (False, None)


def _mode_of(user: User) -> str | None:
    return user.recording_mode if user.recorded else None


def _check(
    session: Session,
    tenant: Tenant,
    principal: Principal,
    lines: list[UserLine],
    errors: list[LineError],
) -> _Plan:
    """Everything about the lines that needs the tenant; adds to ``errors``."""
    users = _tenant_users(session, tenant)
    by_extension = {u.extension: u for u in users if u.extension}
    holder: dict[str, User] = {}
    for user in users:
        holder.update({a.aor: user for a in user.aors})
        holder.update({n.number: user for n in user.numbers})
    plan = _Plan(
        teams={
            t.name.casefold(): t
            for t in session.scalars(select(Team).where(Team.tenant_id == tenant.id))
        },
        members=_memberships(session, tenant),
    )
    notice_accepted = get_legal_notice(tenant, principal, session).accepted
    in_file = {line.extension for line in lines}
    first_line: dict[str, int] = {}  # extension / number / AOR -> the line that has it
    for line in lines:
        target = by_extension.get(line.extension)
        reason = _line_problem(
            line, target, holder, in_file, first_line, plan, principal, notice_accepted, tenant
        )
        if reason is not None:
            errors.append(LineError(line.line, reason))
            continue
        if target is None or _differs(plan, line, target):
            plan.changed.add(len(plan.lines))
        plan.lines.append((line, target))
    return plan


def _line_problem(
    line: UserLine,
    user: User | None,
    holder: dict[str, User],
    in_file: set[str],
    first_line: dict[str, int],
    plan: _Plan,
    principal: Principal,
    notice_accepted: bool,
    tenant: Tenant,
) -> str | None:
    if line.extension in first_line:
        return f"extension {line.extension} is on line {first_line[line.extension]} already"
    first_line[line.extension] = line.line
    try:
        check_user_addresses(tenant, line.aors or (), line.numbers or ())
    except OutsideTenant as exc:
        return str(exc)
    for value in (*(line.aors or ()), *(line.numbers or ())):
        if value in first_line:
            return f"{value} is on line {first_line[value]} already"
        first_line[value] = line.line
        owner = holder.get(value)
        # the owner gives it up only by a line of their own (matched by extension)
        if owner is not None and owner is not user and owner.extension not in in_file:
            return f"{value} belongs to another user of this tenant ({owner.name})"
    for team in line.teams or ():
        if team.casefold() not in plan.teams:
            return f"teams: there is no team {team!r}; create it first"
    if user is not None and user.id == principal.user_id and line.role not in (None, "admin"):
        return "role: you cannot take away your own admin access; ask another admin"
    if line.mode and not notice_accepted:
        wanted = _recording(line)
        if user is None or wanted != (user.recorded, _mode_of(user)):
            return "recording_mode: accept the legal notice in Settings › Recording first"
    return None


def _apply(session: Session, tenant: Tenant, plan: _Plan) -> None:
    """Make the planned changes (already checked) in the open transaction."""
    changed = [plan.lines[i] for i in sorted(plan.changed)]
    # addresses that change hands between users of the file: free them first, so
    # that the per-user check of set_user_addresses sees the final owners
    for line, user in changed:
        if user is not None and line.aors is not None:
            user.aors = [a for a in user.aors if a.aor in line.aors]
        if user is not None and line.numbers is not None:
            user.numbers = [n for n in user.numbers if n.number in line.numbers]
    session.flush()
    with session.no_autoflush:
        for line, existing in changed:
            if existing is None:  # a new user: the one creation path (checked once more)
                new_user(
                    session,
                    tenant,
                    line.name,
                    extension=line.extension,
                    numbers=line.numbers or (),
                    aors=line.aors or (),
                    role=line.role or "user",
                    email=line.email or None,
                    recorded=bool(line.mode),
                    mode=line.mode or None,
                )
                continue
            user = existing
            user.name = line.name
            if line.email is not None:
                user.email = line.email or None
            if line.role is not None:
                user.role = line.role or "user"
            if line.mode is not None:
                user.recorded = bool(line.mode)
                if line.mode:
                    user.recording_mode = line.mode
            set_user_addresses(session, tenant, user, aors=line.aors, numbers=line.numbers)
    session.flush()
    _apply_teams(session, tenant, plan, changed)


def _apply_teams(
    session: Session,
    tenant: Tenant,
    plan: _Plan,
    changed: list[tuple[UserLine, User | None]],
) -> None:
    """Team memberships as the lines say (a lead stays lead of a team they keep)."""
    users = {
        u.extension: u
        for u in session.scalars(select(User).where(User.tenant_id == tenant.id))
        if u.extension
    }
    for line, _existing in changed:
        if line.teams is None:
            continue
        user = users[line.extension]
        wanted = _team_ids(plan, line.teams)
        current = plan.members.get(user.id, {})
        for team_id, member in current.items():
            if team_id not in wanted:
                session.delete(member)
        for team_id in wanted - set(current):
            session.add(TeamMember(tenant_id=tenant.id, team_id=team_id, user_id=user.id))


def _rejected(errors: list[LineError]) -> JSONResponse:
    errors.sort(key=lambda e: e.line)
    shown = errors[:MAX_REPORTED_LINES]
    first = "; ".join(f"line {e.line}: {e.reason}" for e in shown[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return JSONResponse(
        {
            "error": {
                "id": ErrorId.USERS_CSV_INVALID,
                "message": f"nothing was imported: {first}{more}",
                "lines": [{"line": e.line, "reason": e.reason} for e in shown],
            }
        },
        status_code=ErrorId.USERS_CSV_INVALID.status,
    )


@router.post(
    "/users.csv",
    response_model=ImportOut,
    responses={422: {"description": "the bad lines, under error.lines; nothing was imported"}},
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
def import_users(
    tenant: AdminTenant,
    principal: CurrentPrincipal,
    body: CsvBody,
    session: SessionDep,
    request: Request,
    dry_run: Annotated[bool, Query(description="check and count only")] = False,
) -> ImportOut | JSONResponse:
    """Creates and updates the file's users, all or nothing (see the module doc)."""
    try:
        lines, errors = read_users_csv(body)
    except CsvTooLarge as exc:
        raise TooLarge(str(exc)) from exc
    if not lines and not errors:
        raise InvalidInput("the file has a header but no users", error_id=ErrorId.USERS_CSV_INVALID)
    plan = _check(session, tenant, principal, lines, errors)
    if errors:
        session.rollback()
        return _rejected(errors)
    out = ImportOut(
        users=len(plan.lines),
        created=plan.created,
        updated=plan.updated,
        unchanged=len(plan.lines) - len(plan.changed),
        dry_run=dry_run,
    )
    if dry_run:
        session.rollback()
        return out
    try:
        _apply(session, tenant, plan)
    except IntegrityError as exc:  # a concurrent request took an extension, number or AOR
        session.rollback()
        raise Conflict(
            "an extension, number or AOR of the file was taken meanwhile; nothing was "
            "imported, try again",
            error_id=ErrorId.USER_EXISTS,
        ) from exc
    audit(
        session,
        request,
        principal,
        "users.import",
        tenant.id,
        users=out.users,
        created=out.created,
        updated=out.updated,
        unchanged=out.unchanged,
        bytes=len(body),
    )
    session.commit()
    request.app.state.context.on_directory_change()
    return out


def export_records(session: Session, tenant: Tenant) -> list[UserRecord]:
    """The tenant's users with an extension, as the export writes them."""
    team_names = {
        t.id: t.name for t in session.scalars(select(Team).where(Team.tenant_id == tenant.id))
    }
    members = _memberships(session, tenant)
    return [
        UserRecord(
            name=u.name,
            extension=u.extension,
            numbers=[n.number for n in u.numbers],
            aors=[a.aor for a in u.aors],
            email=u.email,
            role=u.role,
            teams=sorted(team_names[t] for t in members.get(u.id, {})),
            mode=_mode_of(u),
        )
        for u in _tenant_users(session, tenant)
        if u.extension
    ]


@router.get(
    "/users.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the users CSV"}},
)
def export_users(
    tenant: AdminTenant, principal: CurrentPrincipal, session: SessionDep, request: Request
) -> Response:
    """The tenant's users in the import's format (users without an extension are left out)."""
    records = export_records(session, tenant)
    text = write_users_csv(records)
    audit(session, request, principal, "users.export", tenant.id, users=len(records))
    session.commit()
    return Response(
        text.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="users-{tenant.id}.csv"',
            "Cache-Control": "no-store",
        },
    )


__all__ = ["ImportOut", "export_records", "export_users", "import_users", "router"]
