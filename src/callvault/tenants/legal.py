"""The legal notice a tenant admin must accept before anything is recorded (SPEC 8)."""

from __future__ import annotations

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
