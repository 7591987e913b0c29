"""Playback's question in words (SPEC 6, the HIP manual): nl/de/en.

The push notification's title, body and action titles, and the e-mail that
asks the same for users who chose it (``User.playback_email``). Both name
only the other party and the call's local time: what the notification shows
on a locked phone is all any of them carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Final

from callvault.mail.messages import Party, local_time, sender

# key: (nl, de, en); the Dutch as in the HIP manual ("opslaan of verwijderen")
_WORDS: Final[dict[str, tuple[str, str, str]]] = {
    "title": ("Gesprek opslaan?", "Gespräch speichern?", "Keep this call?"),
    "body": ("{party}, {time}", "{party}, {time}", "{party}, {time}"),
    "keep": ("Opslaan", "Speichern", "Keep"),
    "discard": ("Verwijderen", "Löschen", "Discard"),
    "unknown": ("onbekend", "unbekannt", "unknown"),
    "subject": (
        "Gesprek opslaan? {party}, {time}",
        "Gespräch speichern? {party}, {time}",
        "Keep this call? {party}, {time}",
    ),
    "intro": (
        "Uw gesprek met {party} op {time} is opgenomen.",
        "Ihr Gespräch mit {party} am {time} wurde aufgezeichnet.",
        "Your call with {party} on {time} was recorded.",
    ),
    "question": (
        "Wilt u de opname opslaan of verwijderen? Kies in het portaal:",
        "Möchten Sie die Aufnahme speichern oder löschen? Wählen Sie im Kundenportal:",
        "Do you want to keep or discard the recording? Choose in the portal:",
    ),
    "no_answer": (
        "Zonder antwoord blijft de opname beschikbaar tot {expires} en wordt daarna verwijderd.",
        "Ohne Antwort bleibt die Aufnahme bis {expires} verfügbar und wird danach gelöscht.",
        "Without an answer the recording stays available until {expires}, then it is deleted.",
    ),
    "footer": (
        "Dit bericht is automatisch verstuurd door callvault.",
        "Diese E-Mail wurde automatisch von callvault versendet.",
        "This message was sent automatically by callvault.",
    ),
}
_INDEX: Final[dict[str, int]] = {"nl": 0, "de": 1, "en": 2}
# short: a notification has a line or two
_SHORT_TIME: Final[dict[str, str]] = {
    "nl": "%d-%m %H:%M",
    "de": "%d.%m. %H:%M",
    "en": "%d %b %H:%M",
}
_LONG_TIME: Final[dict[str, str]] = {
    "nl": "%d-%m-%Y %H:%M",
    "de": "%d.%m.%Y %H:%M",
    "en": "%Y-%m-%d %H:%M",
}
PARTY_MAX = 64  # of the notification's text, so a long display name cannot fill the payload


def word(language: str, key: str) -> str:
    return _WORDS[key][_INDEX.get(language, 0)]


@dataclass(frozen=True)
class Question:
    """What is asked about one recording, in the user's language and the tenant's zone."""

    recording_id: str
    other: Party
    started_at: datetime  # UTC
    expires_at: datetime  # UTC: no answer by then, the recording is gone
    language: str
    timezone: str  # IANA

    def party(self) -> str:
        return self.other.label(self.language)[:PARTY_MAX] or word(self.language, "unknown")

    def time(self, *, long: bool = False) -> str:
        formats = _LONG_TIME if long else _SHORT_TIME
        local = local_time(self.started_at, self.timezone)
        return f"{local:{formats.get(self.language, formats['nl'])}}"

    def title(self) -> str:
        return word(self.language, "title")

    def body(self) -> str:
        return word(self.language, "body").format(party=self.party(), time=self.time())


def question_mail(
    question: Question, *, link: str, smtp_from: str, to: str, at: datetime
) -> EmailMessage:
    """The e-mail asking ``question``; ``link`` is the portal's keep/discard page."""
    language = question.language
    party, when = question.party(), question.time(long=True)
    expires = f"{local_time(question.expires_at, question.timezone):%Y-%m-%d %H:%M}"
    message = EmailMessage()
    from_address = sender(smtp_from, language)
    message["From"] = from_address
    message["To"] = to
    message["Subject"] = word(language, "subject").format(party=party, time=when)
    message["Date"] = format_datetime(at if at.tzinfo else at.replace(tzinfo=UTC))
    # one Message-ID per recording: a message sent again after a crash is the same message
    domain = from_address.domain or "callvault.invalid"
    message["Message-ID"] = f"<playback.{question.recording_id}@{domain}>"
    message["Content-Language"] = language
    lines = [
        word(language, "intro").format(party=party, time=when),
        "",
        word(language, "question"),
        link,
        "",
        word(language, "no_answer").format(expires=expires),
        "",
        "-- ",
        word(language, "footer"),
    ]
    message.set_content("\n".join(lines) + "\n")
    return message
