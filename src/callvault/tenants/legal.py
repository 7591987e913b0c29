"""The legal notice a tenant admin must accept before anything is recorded (SPEC 8).

``accept_notice`` is the one way an acceptance is stored (the API, after it
checked that the caller is the admin in their own portal session, and the
seeding helpers of the demo and tests): only once the operator enabled
recording (``tenants/enablement.py``), only the current version.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from callvault.db.models import LegalAcceptance, User
from callvault.errors import Conflict, ErrorId
from callvault.tenants.enablement import is_enabled

NOTICE_VERSION = "2026-11"

NOTICE = {
    "en": (
        "Recording telephone calls processes personal data. You confirm that your "
        "organisation has a lawful basis for recording (consent, contract, legal duty or "
        "legitimate interest), informs callers that calls may be recorded, records only "
        "for the purpose you state below, keeps recordings no longer than needed, and "
        "gives data subjects access to their recordings on request."
    ),
    "nl": (
        "Het opnemen van telefoongesprekken is een verwerking van persoonsgegevens. U "
        "bevestigt dat uw organisatie een rechtsgrond heeft voor het opnemen, bellers "
        "informeert dat gesprekken kunnen worden opgenomen, alleen opneemt voor het doel "
        "dat u hieronder noemt, opnames niet langer bewaart dan nodig en betrokkenen op "
        "verzoek inzage geeft."
    ),
    "de": (
        "Die Aufzeichnung von Telefongesprächen ist eine Verarbeitung personenbezogener "
        "Daten. Sie bestätigen, dass Ihre Organisation eine Rechtsgrundlage für die "
        "Aufzeichnung hat, Anrufer über die Aufzeichnung informiert, nur zu dem unten "
        "genannten Zweck aufzeichnet, Aufnahmen nicht länger als nötig aufbewahrt und "
        "Betroffenen auf Anfrage Auskunft gibt."
    ),
}


class RecordingNotEnabled(Conflict):
    error_id = ErrorId.RECORDING_NOT_ENABLED


def accept_notice(
    session: Session,
    tenant_id: int,
    admin: User,
    version: str,
    purpose: str,
    at: datetime | None = None,
) -> LegalAcceptance:
    """Store ``admin``'s acceptance of ``version`` for the tenant, with the stated purpose.

    409 ``recording-not-enabled`` before the operator enabled recording; 409
    ``legal-notice-version`` for another version than the current one.
    """
    if not is_enabled(session, tenant_id, "recording"):
        raise RecordingNotEnabled(
            "recording has not been enabled for this organisation yet; your provider enables "
            "it once the signed declaration has been received"
        )
    if version != NOTICE_VERSION:
        raise Conflict(
            f"the current notice is version {NOTICE_VERSION}; read it again and accept that one",
            error_id=ErrorId.LEGAL_NOTICE_VERSION,
        )
    acceptance = LegalAcceptance(
        tenant_id=tenant_id,
        user_id=admin.id,
        actor=f"{admin.name} (user:{admin.id})",
        text_version=version,
        purpose=purpose,
        accepted_at=at or datetime.now(UTC),
    )
    session.add(acceptance)
    session.flush()
    return acceptance
