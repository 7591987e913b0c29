"""The e-mail that says an export is ready (SPEC 5), in the tenant's language.

It carries only a link to the portal page (``public_url/exports/<id>``), which
needs the admin's login; no recording and no file link that works without one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

from callvault.db.models import Export, Tenant
from callvault.settings import Settings

_TEXT: dict[str, dict[str, str]] = {
    "nl": {
        "subject": "Bulk download: de opnames van {month} staan klaar",
        "body": (
            "De bulk download van {month} voor {tenant} staat klaar: {recordings} opname(s) "
            "in {files} ZIP-bestand(en), {size}.\n\n"
            "Downloaden (log in op het portaal als beheerder):\n{link}\n\n"
            "De link verloopt op {expires}; daarna worden de bestanden verwijderd.\n"
            "Elk ZIP-bestand bevat manifest.csv en manifest.json met de SHA-256 van elke opname.\n"
        ),
    },
    "de": {
        "subject": "Massen-Download: die Aufnahmen von {month} stehen bereit",
        "body": (
            "Der Massen-Download von {month} für {tenant} steht bereit: {recordings} "
            "Aufnahme(n) in {files} ZIP-Datei(en), {size}.\n\n"
            "Herunterladen (melden Sie sich im Portal als Administrator an):\n{link}\n\n"
            "Der Link läuft am {expires} ab; danach werden die Dateien gelöscht.\n"
            "Jede ZIP-Datei enthält manifest.csv und manifest.json mit dem SHA-256 jeder "
            "Aufnahme.\n"
        ),
    },
    "en": {
        "subject": "Bulk download: the recordings of {month} are ready",
        "body": (
            "The bulk download of {month} for {tenant} is ready: {recordings} recording(s) "
            "in {files} ZIP file(s), {size}.\n\n"
            "Download (log in to the portal as an administrator):\n{link}\n\n"
            "The link expires on {expires}; the files are deleted then.\n"
            "Each ZIP file holds manifest.csv and manifest.json with the SHA-256 of every "
            "recording.\n"
        ),
    },
}


def export_link(settings: Settings, export: Export) -> str:
    return f"{settings.public_url.rstrip('/')}/exports/{export.id}"


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.1f} kB"


def export_ready_message(
    settings: Settings, export: Export, tenant: Tenant, recipient: str
) -> EmailMessage:
    text = _TEXT.get(tenant.language, _TEXT["en"])
    expires = export.expires_at or datetime.now(UTC)
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    values = {
        "month": export.month,
        "tenant": tenant.name,
        "recordings": export.recordings,
        "files": len(export.files),
        "size": _size(export.bytes_total),
        "link": export_link(settings, export),
        "expires": expires.astimezone(ZoneInfo(tenant.timezone)).strftime("%Y-%m-%d %H:%M %Z"),
    }
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = recipient
    message["Subject"] = text["subject"].format(**values)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(text["body"].format(**values))
    return message
