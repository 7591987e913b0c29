"""A user's blacklist and whitelist (SPEC sections 3 and 6): list, add, remove.

One place for both ways in: the admin's (or the user's)
``/api/v1/tenants/{t}/users/{id}/contacts`` and the user's own
``/api/v1/me/contacts``. Each change is audited and committed; the caller
reloads the SIP side's directory.
"""

from __future__ import annotations

from typing import Literal

from fastapi import Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callvault.db.models import User, UserContact
from callvault.errors import Conflict, ErrorId, NotFound
from callvault.portal.api.schemas import Strict
from callvault.portal.audit import audit
from callvault.portal.auth import Principal
from callvault.tenants.numbers import normalise_aor, normalise_number


class ContactIn(Strict):
    list: Literal["blacklist", "whitelist"]
    value: str = Field(min_length=3, max_length=255, description="E.164 number or SIP AOR")

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        if "@" in value:
            return normalise_aor(value)
        return normalise_number(value)


class ContactOut(BaseModel):
    id: int
    list: str
    value: str


def _out(contact: UserContact) -> ContactOut:
    return ContactOut(id=contact.id, list=contact.list, value=contact.value)


def contacts_of(session: Session, user: User) -> list[ContactOut]:
    rows = session.scalars(
        select(UserContact)
        .where(UserContact.tenant_id == user.tenant_id, UserContact.user_id == user.id)
        .order_by(UserContact.id)
    )
    return [_out(c) for c in rows]


def add_contact(
    session: Session, request: Request, principal: Principal, user: User, body: ContactIn
) -> ContactOut:
    contact = UserContact(
        tenant_id=user.tenant_id, user_id=user.id, list=body.list, value=body.value
    )
    session.add(contact)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "this contact is on one of the lists already", error_id=ErrorId.CONTACT_EXISTS
        ) from exc
    audit(
        session,
        request,
        principal,
        "contacts.add",
        user.tenant_id,
        target=f"user:{user.id}",
        list=body.list,
    )
    session.commit()
    return _out(contact)


def remove_contact(
    session: Session, request: Request, principal: Principal, user: User, contact_id: int
) -> None:
    contact = session.scalar(
        select(UserContact).where(
            UserContact.tenant_id == user.tenant_id,
            UserContact.user_id == user.id,
            UserContact.id == contact_id,
        )
    )
    if contact is None:
        raise NotFound("no such contact", error_id=ErrorId.CONTACT_NOT_FOUND)
    session.delete(contact)
    audit(session, request, principal, "contacts.remove", user.tenant_id, target=f"user:{user.id}")
    session.commit()
