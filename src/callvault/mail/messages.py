"""The recording e-mail (SPEC 5, the German manual): words in nl/de/en and the MIME message.

One ``multipart/mixed`` message (RFC 2045/2046, built with ``email.message``):
a plain-text body naming the call's parties, its time in the tenant's time
zone, duration and direction, and either the MP3 as an ``audio/mpeg``
attachment or, when it is too large to attach or the tenant is stream-only,
a link to the recording in the portal. A recording that will not be kept in
the portal gets no link: it would lead nowhere once the mail server accepted
the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Language = Literal["nl", "de", "en"]

# key: (nl, de, en)
_WORDS: Final[dict[str, tuple[str, str, str]]] = {
    "sender": (
        "callvault gespreksopnames",
        "callvault Gesprächsaufzeichnung",
        "callvault call recordings",
    ),
    "subject": ("Gespreksopname", "Gesprächsaufzeichnung", "Call recording"),
    "intro": (
        "Hierbij de opname van het volgende gesprek.",
        "Anbei die Aufzeichnung des folgenden Gesprächs.",
        "Here is the recording of the following call.",
    ),
    "from": ("Van", "Von", "From"),
    "to": ("Naar", "An", "To"),
    "time": ("Tijd", "Zeit", "Time"),
    "duration": ("Duur", "Dauer", "Duration"),
    "direction": ("Richting", "Richtung", "Direction"),
    "direction.inbound": ("inkomend", "eingehend", "inbound"),
    "direction.outbound": ("uitgaand", "ausgehend", "outbound"),
    "direction.internal": ("intern", "intern", "internal"),
    "direction.unknown": ("onbekend", "unbekannt", "unknown"),
    "unknown": ("onbekend", "unbekannt", "unknown"),
    "attached": (
        "De opname is bijgevoegd als MP3-bestand.",
        "Die Aufzeichnung ist als MP3-Datei angehängt.",
        "The recording is attached as an MP3 file.",
    ),
    "too_large": (
        "De opname is te groot om mee te sturen ({size}). Beluister hem in het portaal:",
        "Die Aufzeichnung ist zu groß für einen Anhang ({size}). Sie können sie im "
        "Kundenportal anhören:",
        "The recording is too large to attach ({size}). Listen to it in the portal:",
    ),
    "stream_only": (
        "Opnames van uw organisatie zijn alleen in het portaal te beluisteren:",
        "Aufzeichnungen Ihrer Organisation können nur im Kundenportal angehört werden:",
        "Your organisation's recordings can only be listened to in the portal:",
    ),
    "link": (
        "In het portaal:",
        "Im Kundenportal:",
        "In the portal:",
    ),
    "not_stored": (
        "Deze opname wordt niet in het portaal bewaard: dit bericht is het enige exemplaar.",
        "Diese Aufzeichnung wird nicht im Kundenportal gespeichert: diese E-Mail ist "
        "die einzige Kopie.",
        "This recording is not stored in the portal: this message is the only copy.",
    ),
    "footer": (
        "Dit bericht is automatisch verstuurd door callvault.",
        "Diese E-Mail wurde automatisch von callvault versendet.",
        "This message was sent automatically by callvault.",
    ),
}
_INDEX: Final[dict[str, int]] = {"nl": 0, "de": 1, "en": 2}
# the tenant's language, the way its people write a date and time
_TIME_FORMAT: Final[dict[str, str]] = {
    "nl": "%d-%m-%Y %H:%M:%S %Z",
    "de": "%d.%m.%Y %H:%M:%S %Z",
    "en": "%Y-%m-%d %H:%M:%S %Z",
}


def word(language: str, key: str) -> str:
    return _WORDS[key][_INDEX.get(language, 0)]


@dataclass(frozen=True)
class Party:
    name: str | None
    number: str | None  # E.164, or the AOR when the party has no number

    def label(self, language: str) -> str:
        if self.name and self.number:
            return f"{self.name} ({self.number})"
        return self.name or self.number or word(language, "unknown")


@dataclass(frozen=True)
class RecordingMail:
    """What the message says about one recording (gathered by ``mail.recordings``)."""

    recording_id: str
    caller: Party
    callee: Party
    started_at: datetime  # UTC
    duration_ms: int
    direction: str  # inbound | outbound | internal | unknown
    language: str
    timezone: str  # IANA
    size_bytes: int
    link: str | None  # the recording in the portal; None when it is not kept there
    stored_in_portal: bool
    # the tenant allows listening in the portal only: the link, never the file
    stream_only: bool = False


def local_time(at: datetime, timezone: str) -> datetime:
    if at.tzinfo is None:  # the database keeps UTC without an offset
        at = at.replace(tzinfo=UTC)
    try:
        return at.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return at.astimezone(UTC)


def format_duration(ms: int) -> str:
    seconds = max(0, round(ms / 1000))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def format_size(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 1_000_000 else f"{size / 1000:.0f} kB"


def _filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9+]+", "-", text).strip("-")[:40]


def attachment_name(mail: RecordingMail) -> str:
    """``2026-12-03_140512_+31201234501_+31612345678.mp3``: sortable, the tenant's local time."""
    local = local_time(mail.started_at, mail.timezone)
    parts = [f"{local:%Y-%m-%d_%H%M%S}"]
    for party in (mail.caller, mail.callee):
        part = _filename_part(party.number or party.name or "")
        if part:
            parts.append(part)
    return "_".join(parts) + ".mp3"


def subject(mail: RecordingMail) -> str:
    language = mail.language
    local = local_time(mail.started_at, mail.timezone)
    return (
        f"{word(language, 'subject')}: {mail.caller.label(language)} → "
        f"{mail.callee.label(language)}, {local:{_TIME_FORMAT.get(language, _TIME_FORMAT['nl'])}}"
    )


def body(mail: RecordingMail, attached: bool) -> str:
    language = mail.language
    local = local_time(mail.started_at, mail.timezone)
    direction = mail.direction if f"direction.{mail.direction}" in _WORDS else "unknown"
    lines = [
        word(language, "intro"),
        "",
        f"{word(language, 'from')}: {mail.caller.label(language)}",
        f"{word(language, 'to')}: {mail.callee.label(language)}",
        f"{word(language, 'time')}: {local:{_TIME_FORMAT.get(language, _TIME_FORMAT['nl'])}}",
        f"{word(language, 'duration')}: {format_duration(mail.duration_ms)}",
        f"{word(language, 'direction')}: {word(language, 'direction.' + direction)}",
        "",
    ]
    if attached:
        lines.append(word(language, "attached"))
        if mail.link:
            lines += [f"{word(language, 'link')} {mail.link}"]
    else:
        if mail.stream_only:
            lines.append(word(language, "stream_only"))
        else:
            lines.append(word(language, "too_large").format(size=format_size(mail.size_bytes)))
        if mail.link:
            lines.append(mail.link)
    if not mail.stored_in_portal:
        lines += ["", word(language, "not_stored")]
    lines += ["", "-- ", word(language, "footer")]
    return "\n".join(lines) + "\n"


def sender(smtp_from: str, language: str) -> Address:
    """``settings.smtp_from``'s address with a display name in the tenant's language."""
    _name, address = parseaddr(smtp_from)
    return Address(display_name=word(language, "sender"), addr_spec=address or smtp_from)


def build_recording_message(
    mail: RecordingMail, *, smtp_from: str, to: str, audio: bytes | None, at: datetime
) -> EmailMessage:
    """The message for ``mail``; ``audio`` None means the link stands in for the file."""
    message = EmailMessage()
    from_address = sender(smtp_from, mail.language)
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = subject(mail)
    message["Date"] = format_datetime(at if at.tzinfo else at.replace(tzinfo=UTC))
    # one Message-ID per recording: a message sent again after a crash is recognisably the same
    domain = from_address.domain or "callvault.invalid"
    message["Message-ID"] = f"<recording.{mail.recording_id}@{domain}>"
    message["Content-Language"] = mail.language
    message.set_content(body(mail, attached=audio is not None))
    if audio is not None:
        message.add_attachment(
            audio, maintype="audio", subtype="mpeg", filename=attachment_name(mail)
        )
    return message
