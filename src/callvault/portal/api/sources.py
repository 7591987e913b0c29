"""The operator's recording sources: ``/api/v1/sources`` (SPEC section 2, last paragraph).

Only the operator sees or changes sources (anyone else: 403 ``role-required``,
as on the other operator routes); an unknown id is 404. Every change is
audited (``source.create`` / ``source.change`` / ``source.delete``, operator
level: no tenant) and then ``on_directory_change()`` lets the running server
reload its ``SourceRegistry``. Validation lives in ``callvault.sources.store``.
A source's ``kind`` is ``siprec`` (mode 1) or ``pbx`` / ``trunk`` (a B2BUA leg,
mode 2; its calls follow ``/api/v1/routes``).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from callvault.db.models import RecordingSourceRow
from callvault.errors import ErrorId, InvalidInput, NotFound
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import MAX_ID, DbId, SessionDep, as_utc
from callvault.portal.roles import OperatorOnly
from callvault.portal.timefmt import UtcDateTime
from callvault.sources.registry import LIMIT_BOUNDS, SourceLimits
from callvault.sources.store import SourceSpec, add_source, change_source, list_sources
from callvault.sources.store import source_facts as facts

router = APIRouter(prefix="/api/v1/sources", tags=["sources"])

_DEFAULTS = SourceLimits()


def _limit(name: str, default: int | None) -> Any:
    low, high = LIMIT_BOUNDS[name]
    return Field(default=default, ge=low, le=high)


SourceKind = Literal["siprec", "pbx", "trunk"]  # sources.registry.SOURCE_KINDS


class SourceIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: SourceKind = Field(
        default="siprec", description="siprec: sends SIPREC; pbx or trunk: a B2BUA leg"
    )
    networks: list[str] = Field(
        default_factory=list, max_length=100, description="CIDRs or addresses, IPv4 or IPv6"
    )
    fingerprints: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="SHA-256 of the client certificate (DER), hex, colons allowed",
    )
    tenant_ids: list[int] = Field(
        default_factory=list, max_length=10_000, description="tenants this source may record for"
    )
    require_tls: bool = False
    require_srtp: bool = False
    max_calls: int = _limit("max_calls", _DEFAULTS.max_calls)
    max_streams: int = _limit("max_streams", _DEFAULTS.max_streams)
    max_media_lines: int = _limit("max_media_lines", _DEFAULTS.max_media_lines)
    max_session_expires_s: int = _limit("max_session_expires_s", _DEFAULTS.max_session_expires_s)


class SourcePatchIn(Strict):
    """Absent (or null) means unchanged; a list replaces the source's list."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: SourceKind | None = None
    networks: list[str] | None = Field(default=None, max_length=100)
    fingerprints: list[str] | None = Field(default=None, max_length=20)
    tenant_ids: list[int] | None = Field(default=None, max_length=10_000)
    require_tls: bool | None = None
    require_srtp: bool | None = None
    max_calls: int | None = _limit("max_calls", None)
    max_streams: int | None = _limit("max_streams", None)
    max_media_lines: int | None = _limit("max_media_lines", None)
    max_session_expires_s: int | None = _limit("max_session_expires_s", None)


class SourceOut(BaseModel):
    id: int
    name: str
    kind: SourceKind
    networks: list[str]
    fingerprints: list[str]
    tenant_ids: list[int]
    require_tls: bool
    require_srtp: bool
    max_calls: int
    max_streams: int
    max_media_lines: int
    max_session_expires_s: int
    created_at: UtcDateTime
    created_by: str


def source_out(row: RecordingSourceRow) -> SourceOut:
    return SourceOut(
        id=row.id, created_at=as_utc(row.created_at), created_by=row.created_by, **facts(row)
    )


def _source(session: SessionDep, source_id: int) -> RecordingSourceRow:
    row = session.get(RecordingSourceRow, source_id)
    if row is None:
        raise NotFound("no such recording source", error_id=ErrorId.SOURCE_NOT_FOUND)
    return row


def _tenant_ids(values: list[int]) -> list[int]:
    bad = [t for t in values if not 1 <= t <= MAX_ID]
    if bad:
        raise InvalidInput(f"no such tenant: {bad[0]}", error_id=ErrorId.SOURCE_TENANT_UNKNOWN)
    return values


@router.get("", response_model=list[SourceOut])
def list_recording_sources(_principal: OperatorOnly, session: SessionDep) -> list[SourceOut]:
    return [source_out(row) for row in list_sources(session)]


@router.post("", status_code=201, response_model=SourceOut)
def create_recording_source(
    body: SourceIn, principal: OperatorOnly, session: SessionDep, request: Request
) -> SourceOut:
    row = add_source(
        session,
        SourceSpec(
            name=body.name,
            networks=body.networks,
            fingerprints=body.fingerprints,
            tenant_ids=_tenant_ids(body.tenant_ids),
            require_tls=body.require_tls,
            require_srtp=body.require_srtp,
            limits=SourceLimits(**{name: getattr(body, name) for name in LIMIT_BOUNDS}),
            kind=body.kind,
        ),
        created_by=principal.actor(),
    )
    audit(
        session, request, principal, "source.create", None, target=f"source:{row.id}", **facts(row)
    )
    session.commit()
    request.app.state.context.on_directory_change()
    return source_out(row)


@router.get("/{source_id}", response_model=SourceOut)
def get_recording_source(
    source_id: DbId, _principal: OperatorOnly, session: SessionDep
) -> SourceOut:
    return source_out(_source(session, source_id))


@router.patch("/{source_id}", response_model=SourceOut)
def change_recording_source(
    source_id: DbId,
    body: SourcePatchIn,
    principal: OperatorOnly,
    session: SessionDep,
    request: Request,
) -> SourceOut:
    wanted = body.model_dump(exclude_none=True)
    if not wanted:
        raise InvalidInput("nothing to change", error_id=ErrorId.NO_CHANGE)
    if "tenant_ids" in wanted:
        _tenant_ids(wanted["tenant_ids"])
    row = _source(session, source_id)
    changed = change_source(session, row, wanted)
    if changed:
        audit(
            session,
            request,
            principal,
            "source.change",
            None,
            target=f"source:{row.id}",
            **{key: diff["new"] for key, diff in changed.items()},
            old={key: diff["old"] for key, diff in changed.items()},
        )
    session.commit()
    if changed:
        request.app.state.context.on_directory_change()
    return source_out(row)


@router.delete("/{source_id}", status_code=204)
def remove_recording_source(
    source_id: DbId, principal: OperatorOnly, session: SessionDep, request: Request
) -> Response:
    row = _source(session, source_id)
    audit(
        session, request, principal, "source.delete", None, target=f"source:{row.id}", **facts(row)
    )
    session.delete(row)
    session.commit()
    request.app.state.context.on_directory_change()
    return Response(status_code=204)
