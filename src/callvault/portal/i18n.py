"""The portal's words in Dutch, German and English (SPEC section 9).

The language of a page is the user's own choice, else the tenant's, else
Dutch (the product's home market). Every key exists in every language; a test
checks that, so a missing word is a failing build rather than a blank button.
"""

from __future__ import annotations

from typing import Final, Literal

Language = Literal["nl", "de", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("nl", "de", "en")
DEFAULT_LANGUAGE: Final[Language] = "nl"
LANGUAGE_NAMES: Final[dict[Language, str]] = {"nl": "Nederlands", "de": "Deutsch", "en": "English"}

# key: (nl, de, en)
_WORDS: Final[dict[str, tuple[str, str, str]]] = {
    # frame
    "app.name": ("callvault", "callvault", "callvault"),
    "nav.reports": ("Rapportages", "Berichte", "Reports"),
    "nav.calls": ("Gesprekken", "Gespräche", "Calls"),
    "nav.settings": ("Instellingen", "Einstellungen", "Settings"),
    "nav.recording": ("Opnemen", "Aufzeichnung", "Recording"),
    "nav.audit": ("Auditlog", "Audit-Protokoll", "Audit log"),
    "nav.tenants": ("Klanten", "Kunden", "Tenants"),
    "nav.language": ("Taal", "Sprache", "Language"),
    "nav.logout": ("Uitloggen", "Abmelden", "Log out"),
    "nav.login": ("Inloggen", "Anmelden", "Log in"),
    "common.save": ("Opslaan", "Speichern", "Save"),
    "common.saved": ("Opgeslagen", "Gespeichert", "Saved"),
    "common.add": ("Toevoegen", "Hinzufügen", "Add"),
    "common.remove": ("Verwijderen", "Entfernen", "Remove"),
    "common.cancel": ("Annuleren", "Abbrechen", "Cancel"),
    "common.yes": ("ja", "ja", "yes"),
    "common.no": ("nee", "nein", "no"),
    "common.none": ("geen", "keine", "none"),
    "common.next": ("Volgende pagina", "Nächste Seite", "Next page"),
    "common.first": ("Eerste pagina", "Erste Seite", "First page"),
    "common.filter": ("Filteren", "Filtern", "Filter"),
    "common.reset": ("Wissen", "Zurücksetzen", "Clear"),
    "common.all": ("alle", "alle", "all"),
    "common.error": ("Er ging iets mis", "Etwas ist schiefgegangen", "Something went wrong"),
    "common.loading": ("Laden…", "Laden…", "Loading…"),
    "common.days": ("dagen", "Tage", "days"),
    # errors
    "error.404.title": ("Niet gevonden", "Nicht gefunden", "Not found"),
    "error.404.text": (
        "Deze pagina of opname bestaat niet, of u heeft er geen toegang toe.",
        "Diese Seite oder Aufnahme gibt es nicht, oder Sie haben keinen Zugriff darauf.",
        "This page or recording does not exist, or you have no access to it.",
    ),
    "error.403.title": ("Geen toegang", "Kein Zugriff", "No access"),
    "error.403.text": (
        "Uw rol geeft geen toegang tot deze pagina.",
        "Ihre Rolle erlaubt den Zugriff auf diese Seite nicht.",
        "Your role does not give access to this page.",
    ),
    "error.back": ("Naar de gesprekken", "Zu den Gesprächen", "Back to calls"),
    # login
    "login.title": ("Inloggen", "Anmelden", "Log in"),
    "login.login": ("Gebruikersnaam", "Benutzername", "User name"),
    "login.password": ("Wachtwoord", "Passwort", "Password"),
    "login.submit": ("Inloggen", "Anmelden", "Log in"),
    "login.failed": (
        "Inloggen mislukt",
        "Anmeldung fehlgeschlagen",
        "Login failed",
    ),
    # roles
    "role.operator": ("operator", "Betreiber", "operator"),
    "role.admin": ("beheerder", "Administrator", "administrator"),
    "role.listener": ("luisteraar", "Zuhörer", "listener"),
    "role.user": ("gebruiker", "Benutzer", "user"),
    # recording modes (SPEC section 3; names as in the manuals)
    "mode.never": ("Nooit", "Nie", "Never"),
    "mode.always": ("Altijd", "Immer", "Always"),
    "mode.always_pause": ("Altijd, met pauze", "Immer, mit Pause", "Always, with pause"),
    "mode.on_demand_keep": (
        "Op verzoek (bewaren als gevraagd)",
        "Auf Wunsch (behalten, wenn verlangt)",
        "On demand (keep if asked)",
    ),
    "mode.on_demand_user": (
        "Op verzoek, gestart door gebruiker",
        "Auf Wunsch, vom Benutzer gestartet",
        "On demand, started by user",
    ),
    "mode.playback": ("Playback", "Playback", "Playback"),
    # settings › recording
    "settings.title": (
        "Instellingen › Opnemen",
        "Einstellungen › Aufzeichnung",
        "Settings › Recording",
    ),
    "legal.title": ("Juridische kennisgeving", "Rechtlicher Hinweis", "Legal notice"),
    "legal.intro": (
        "Lees de kennisgeving en beschrijf het doel van het opnemen. Pas daarna kunt u "
        "opnemen instellen.",
        "Lesen Sie den Hinweis und beschreiben Sie den Zweck der Aufzeichnung. Erst danach "
        "können Sie die Aufzeichnung einrichten.",
        "Read the notice and describe the purpose of recording. Only then can you set up "
        "recording.",
    ),
    "legal.purpose": ("Doel van het opnemen", "Zweck der Aufzeichnung", "Purpose of recording"),
    "legal.purpose_hint": (
        "bijvoorbeeld: kwaliteitscontrole en training van onze servicedesk",
        "z. B. Qualitätskontrolle und Schulung unseres Service-Desks",
        "e.g. quality control and training of our service desk",
    ),
    "legal.accept": (
        "Ik heb gelezen en ga akkoord",
        "Gelesen und akzeptiert",
        "I have read and accept",
    ),
    "legal.accepted_by": ("Geaccepteerd door", "Akzeptiert von", "Accepted by"),
    "legal.accepted_at": ("op", "am", "on"),
    "legal.admin_only": (
        "Alleen een beheerder van de klant kan de kennisgeving accepteren.",
        "Nur ein Administrator des Kunden kann den Hinweis akzeptieren.",
        "Only the customer's administrator can accept the notice.",
    ),
    "list.title": ("Gebruikers die worden opgenomen", "Aufgezeichnete Benutzer", "Recorded users"),
    "list.empty": (
        "Nog niemand. Voeg een gebruiker toe met de plus.",
        "Noch niemand. Fügen Sie einen Benutzer mit dem Plus hinzu.",
        "Nobody yet. Add a user with the plus.",
    ),
    "list.available": ("Selecteer gebruikers", "Benutzer auswählen", "Select users"),
    "list.add_user": (
        "Gebruiker toevoegen aan de opnamelijst",
        "Benutzer zur Aufzeichnung hinzufügen",
        "Add user to the recording list",
    ),
    "list.remove_user": (
        "Van de opnamelijst verwijderen (bestaande opnames blijven)",
        "Von der Aufzeichnungsliste entfernen (vorhandene Aufnahmen bleiben)",
        "Remove from the recording list (existing recordings stay)",
    ),
    "list.mode": ("Opnamestatus", "Aufzeichnungsmodus", "Recording mode"),
    "list.user": ("Gebruiker", "Benutzer", "User"),
    "list.extension": ("Toestel", "Nebenstelle", "Extension"),
    "settings.short_code": (
        "Snelcode (opname aan/uit tijdens gesprek)",
        "Kurzwahl (Aufzeichnung im Gespräch ein/aus)",
        "Short code (recording on/off during a call)",
    ),
    "settings.short_code_hint": (
        "sterretje + 1 cijfer, bijvoorbeeld *1",
        "Stern + 1 Ziffer, z. B. *1",
        "star + 1 digit, e.g. *1",
    ),
    # the German manual's single recording key, picked on a keypad (issue 15)
    "settings.single_key": (
        "Of één toets",
        "Oder eine DTMF-Taste",
        "Or a single key",
    ),
    "settings.single_key_choose": (
        "Klik op de toets om er een te kiezen",
        "Mit einem Klick auf die Taste öffnet sich die Auswahl",
        "Click the key to choose one",
    ),
    "settings.single_key_none": ("kiezen", "wählen", "choose"),
    "settings.key": ("Toets", "Taste", "Key"),
    "settings.single_key_hint": (
        "Met één toets zet elke druk van de gebruiker op die toets de opname aan of uit.",
        "Mit einer einzelnen Taste startet bzw. stoppt jeder Druck des Benutzers auf diese"
        " Taste die Aufzeichnung.",
        "With a single key, every press of that key by the user toggles recording.",
    ),
    "settings.retention": (
        "Hoe lang wilt u de gesprekken bewaren?",
        "Wie lange sollen Aufnahmen aufbewahrt werden?",
        "For how long do you want to keep recordings?",
    ),
    "settings.retention_hint": (
        "Geldt voor alle opnames, ook oudere; de nieuwe termijn telt vanaf vandaag.",
        "Gilt für alle Aufnahmen, auch ältere; die neue Frist zählt ab heute.",
        "Applies to all recordings, older ones too; the new period counts from today.",
    ),
    "settings.plan": ("Abonnement", "Tarif", "Plan"),
    "settings.channels": ("Opnamekanaal", "Aufnahmekanal", "Recording channel"),
    "channels.both": ("Beide kanten (stereo)", "Beide Seiten (Stereo)", "Both sides (stereo)"),
    "channels.user": ("Alleen de gebruiker", "Nur der Agent", "The user only"),
    "channels.other": ("Alleen de andere partij", "Nur der Anrufer", "The other party only"),
    "channels.mix": ("Beide kanten (mono mix)", "Beide Seiten (Mono-Mix)", "Both sides (mono mix)"),
    "settings.pauses": ("Pauzes", "Pausen", "Pauses"),
    "pause.cut": ("Wegknippen", "Herausschneiden", "Cut out"),
    "pause.silence": ("Stilte laten staan", "Als Stille behalten", "Keep as silence"),
    "settings.stream_only": (
        "Alleen afspelen in de browser (downloaden uitgeschakeld)",
        "Nur im Browser abspielen (Download gesperrt)",
        "Stream only in the browser (downloads off)",
    ),
    "settings.bulk": ("Bulk download", "Massen-Download", "Bulk download"),
    "settings.bulk_hint": (
        "Beschikbaar vanaf een bewaartermijn van 180 dagen.",
        "Verfügbar ab einer Aufbewahrung von 180 Tagen.",
        "Available from a retention of 180 days.",
    ),
    "settings.delivery_email": (
        "Opnames per e-mail sturen naar",
        "Aufnahmen per E-Mail senden an",
        "E-mail recordings to",
    ),
    # the German manual's checkbox; its wording (SPEC 5, recordings by e-mail)
    "settings.not_in_portal": (
        "Opnames niet in het portaal bewaren",
        "Aufnahmen nicht im Kundenzugang speichern",
        "Do not store recordings in the portal",
    ),
    "settings.not_in_portal_hint": (
        "Elke opname wordt automatisch in het portaal bewaard. Wilt u dat niet, vink dit "
        "dan aan: een gemailde opname wordt verwijderd zodra de mailserver het bericht "
        "heeft aangenomen.",
        "Jede Datei wird automatisch in Ihrem Kundenzugang gespeichert. Wenn Sie dies nicht "
        "möchten, aktivieren Sie bitte die Checkbox: eine versendete Aufnahme wird gelöscht, "
        "sobald der Mailserver die E-Mail angenommen hat.",
        "Every recording is stored in the portal. If you do not want this, tick the box: a "
        "mailed recording is deleted once the mail server has accepted the message.",
    ),
    "settings.language": ("Taal van de klant", "Sprache des Kunden", "Tenant language"),
    "settings.general": ("Algemeen", "Allgemein", "General"),
    # announcements (B2BUA mode, SPEC 3); the German wording is the manual's
    "announce.title": ("Aankondigingen", "Ansagen", "Announcements"),
    "announce.hint": (
        "Alleen voor gesprekken die via callvault lopen (B2BUA). De andere partij hoort de "
        "aankondiging, de gebruiker een korte toon.",
        "Nur für Gespräche, die über callvault laufen (B2BUA). Der Anrufer hört die Ansage, "
        "der Benutzer einen kurzen Ton.",
        "Only for calls routed through callvault (B2BUA). The other party hears the "
        "announcement, the user a short tone.",
    ),
    "announce.start": (
        "Aankondiging die de beller laat weten dat de opname is gestart",
        "Ansage, die den Anrufer darüber informiert, dass die Aufzeichnung gestartet wurde",
        "An announcement tells the caller that recording has started",
    ),
    "announce.stop": (
        "Aankondiging die de beller laat weten dat de opname is beëindigd",
        "Ansage, die den Anrufer darüber informiert, dass die Aufzeichnung beendet wurde",
        "An announcement tells the caller that recording has stopped",
    ),
    "announce.after_transfer": (
        "De beller na het doorverbinden opnieuw over de opname informeren",
        "Den Anrufer bei der Weiterleitung erneut über die Aufzeichnung informieren",
        "Tell the caller again about the recording after a transfer",
    ),
    "announce.hide_code": (
        "De beller hoort de tonen van de opnametoets niet",
        "Der Anrufer hört die Töne der Aufzeichnungstaste nicht",
        "The caller does not hear the recording key's tones",
    ),
    "announce.kind.start": ("Opname gestart", "Aufzeichnung gestartet", "Recording started"),
    "announce.kind.stop": ("Opname beëindigd", "Aufzeichnung beendet", "Recording stopped"),
    "announce.shipped": ("Standaardaankondiging", "Standardansage", "Default announcement"),
    "announce.custom": ("Eigen bestand", "Eigene Datei", "Own file"),
    "announce.seconds": ("s", "s", "s"),
    "announce.upload": ("Eigen bestand uploaden", "Eigene Datei hochladen", "Upload own file"),
    "announce.upload_hint": (
        "WAV of MP3, hoogstens 2 MB, 0,3 tot 30 seconden; wordt omgezet naar telefoonkwaliteit "
        "(8 kHz).",
        "WAV oder MP3, höchstens 2 MB, 0,3 bis 30 Sekunden; wird in Telefonqualität (8 kHz) "
        "umgewandelt.",
        "WAV or MP3, at most 2 MB, 0.3 to 30 seconds; converted to telephone quality (8 kHz).",
    ),
    "announce.reset": ("Standaard terugzetten", "Standardansage verwenden", "Use the default"),
    # reports › calls
    "calls.title": ("Rapportages › Gesprekken", "Berichte › Gespräche", "Reports › Calls"),
    "calls.from": ("Van", "Von", "From"),
    "calls.to": ("Naar", "An", "To"),
    "calls.duration": ("Duur", "Dauer", "Duration"),
    "calls.start": ("Start", "Beginn", "Start"),
    "calls.answer": ("Opgenomen", "Angenommen", "Answered"),
    "calls.end": ("Einde", "Ende", "End"),
    "calls.direction": ("Richting", "Richtung", "Direction"),
    "calls.recording": ("Opname", "Aufnahme", "Recording"),
    "calls.empty": ("Geen gesprekken gevonden.", "Keine Gespräche gefunden.", "No calls found."),
    "calls.play": ("Afspelen", "Abspielen", "Play"),
    "calls.download": ("Downloaden", "Herunterladen", "Download"),
    "calls.open": ("Details", "Details", "Details"),
    "filter.period_from": ("Vanaf", "Ab", "From date"),
    "filter.period_to": ("Tot en met", "Bis", "To date"),
    "filter.user": ("Gebruiker", "Benutzer", "User"),
    "filter.number": ("Nummer", "Nummer", "Number"),
    "filter.direction": ("Richting", "Richtung", "Direction"),
    "filter.label": ("Label", "Label", "Label"),
    "filter.recorded": ("Alleen opgenomen", "Nur aufgezeichnete", "Recorded only"),
    "direction.inbound": ("inkomend", "eingehend", "inbound"),
    "direction.outbound": ("uitgaand", "ausgehend", "outbound"),
    "direction.internal": ("intern", "intern", "internal"),
    "direction.unknown": ("onbekend", "unbekannt", "unknown"),
    # recording
    "rec.title": ("Opname", "Aufnahme", "Recording"),
    "rec.waveform": ("Golfvorm", "Wellenform", "Waveform"),
    "rec.left": ("links: gebruiker", "links: Agent", "left: user"),
    "rec.right": ("rechts: andere partij", "rechts: Gesprächspartner", "right: other party"),
    "rec.segments": ("Segmenten", "Abschnitte", "Segments"),
    "rec.dtmf": ("Toetsen (DTMF)", "Tasten (DTMF)", "Keys (DTMF)"),
    "rec.parties": ("Deelnemers", "Teilnehmer", "Parties"),
    "rec.side.user": ("gebruiker", "Agent", "user"),
    "rec.side.other": ("andere partij", "Gesprächspartner", "other party"),
    "rec.joined": ("erbij vanaf", "dabei ab", "joined at"),
    "rec.left_at": ("weg om", "weg ab", "left at"),
    "rec.expires": ("Bewaard tot", "Aufbewahrt bis", "Kept until"),
    "rec.unsaved": ("niet bewaard (Playback)", "nicht behalten (Playback)", "not kept (Playback)"),
    "rec.labels": ("Labels", "Labels", "Labels"),
    "rec.label_new": ("Nieuw label", "Neues Label", "New label"),
    "rec.comments": ("Commentaar", "Kommentare", "Comments"),
    "rec.comment_new": ("Commentaar toevoegen", "Kommentar hinzufügen", "Add a comment"),
    "rec.shares": ("Delen", "Teilen", "Share links"),
    "rec.share_create": ("Deellink maken", "Freigabelink erstellen", "Create share link"),
    "rec.share_expiry": ("Geldig (dagen)", "Gültig (Tage)", "Valid for (days)"),
    "rec.share_revoke": ("Intrekken", "Widerrufen", "Revoke"),
    "rec.share_copy": ("Kopieer link", "Link kopieren", "Copy link"),
    "rec.share_copied": ("Link gekopieerd", "Link kopiert", "Link copied"),
    "rec.share_revoked": ("ingetrokken", "widerrufen", "revoked"),
    "rec.share_expires": ("verloopt", "läuft ab", "expires"),
    "rec.share_uses": ("keer gebruikt", "mal benutzt", "uses"),
    "rec.none": ("nog geen", "noch keine", "none yet"),
    "rec.codecs": ("Codecs", "Codecs", "Codecs"),
    "rec.sha256": ("SHA-256", "SHA-256", "SHA-256"),
    "rec.mail": ("E-mail", "E-Mail", "E-mail"),
    "rec.mailed": ("gemaild op", "versendet am", "mailed on"),
    "rec.mail_failed": ("niet verstuurd", "nicht versendet", "not sent"),
    "rec.ask": (
        "Deze opname is nog niet opgeslagen. Opslaan of verwijderen?",
        "Diese Aufnahme ist noch nicht gespeichert. Speichern oder löschen?",
        "This recording is not saved yet. Keep or discard it?",
    ),
    "rec.keep": ("Opslaan", "Speichern", "Keep"),
    "rec.discard": ("Verwijderen", "Löschen", "Discard"),
    "rec.discard_confirm": (
        "De opname wordt direct en definitief verwijderd. Doorgaan?",
        "Die Aufnahme wird sofort und endgültig gelöscht. Fortfahren?",
        "The recording is deleted at once and for good. Go on?",
    ),
    "rec.not_stored": (
        "niet in het portaal bewaard",
        "nicht im Kundenzugang gespeichert",
        "not stored in the portal",
    ),
    # share page
    "share.title": ("Gedeelde opname", "Geteilte Aufnahme", "Shared recording"),
    "share.intro": (
        "Deze opname is met u gedeeld. Afspelen gaat alleen in de browser.",
        "Diese Aufnahme wurde mit Ihnen geteilt. Sie kann nur im Browser abgespielt werden.",
        "This recording was shared with you. It plays in the browser only.",
    ),
    "share.gone": (
        "Deze link is verlopen of ingetrokken.",
        "Dieser Link ist abgelaufen oder wurde widerrufen.",
        "This link has expired or was revoked.",
    ),
    # audit
    "audit.title": ("Auditlog", "Audit-Protokoll", "Audit log"),
    "audit.at": ("Tijd", "Zeit", "Time"),
    "audit.actor": ("Wie", "Wer", "Who"),
    "audit.action": ("Actie", "Aktion", "Action"),
    "audit.target": ("Waarop", "Objekt", "Target"),
    "audit.details": ("Details", "Details", "Details"),
    "audit.address": ("Adres", "Adresse", "Address"),
    "audit.empty": ("Nog geen gebeurtenissen.", "Noch keine Ereignisse.", "No events yet."),
    # LiveCenter (SPEC 7): calls in progress
    "nav.livecenter": ("LiveCenter", "LiveCenter", "LiveCenter"),
    "live.title": ("LiveCenter", "LiveCenter", "LiveCenter"),
    "live.parties": ("Deelnemers", "Teilnehmer", "Parties"),
    "live.duration": ("Duur", "Dauer", "Duration"),
    "live.state": ("Opname", "Aufzeichnung", "Recording"),
    "live.state.ringing": ("Gaat over", "Klingelt", "Ringing"),
    "live.state.not-recording": ("Niet opgenomen", "Keine Aufzeichnung", "Not recording"),
    "live.state.recording": ("Wordt opgenomen", "Wird aufgezeichnet", "Recording"),
    "live.state.paused": ("Gepauzeerd", "Pausiert", "Paused"),
    "live.mode": ("Modus", "Modus", "Mode"),
    "live.presences": ("Meeluisteraars", "Mithörer", "Listening"),
    "live.presence.listen": ("Luistert mee", "Hört mit", "Listening"),
    "live.presence.coach": ("Coacht", "Coacht", "Coaching"),
    "live.actions": ("Acties", "Aktionen", "Actions"),
    "live.record": ("Nu opnemen", "Jetzt aufnehmen", "Record now"),
    "live.record_stop": ("Opname stoppen", "Aufnahme beenden", "Stop recording"),
    "live.recording_started": ("Opname gestart", "Aufnahme gestartet", "Recording started"),
    "live.recording_stopped": ("Opname gestopt", "Aufnahme beendet", "Recording stopped"),
    "live.listen": ("Meeluisteren", "Mithören", "Listen"),
    "live.listen_stop": ("Stop meeluisteren", "Mithören beenden", "Stop listening"),
    "live.listen_failed": (
        "Meeluisteren lukt niet",
        "Mithören nicht möglich",
        "Listening is not possible",
    ),
    "live.coach": ("Coachen", "Coachen", "Coach"),
    "live.coach_calling": (
        "Uw telefoon gaat over: neem op om stil mee te luisteren (1, 2, 3, 0 wisselen)",
        "Ihr Telefon klingelt: abheben, um still mitzuhören (1, 2, 3, 0 wechseln)",
        "Your phone is ringing: answer to listen in silently (1, 2, 3, 0 switch)",
    ),
    "live.empty": (
        "Er lopen nu geen gesprekken.",
        "Zurzeit laufen keine Gespräche.",
        "No calls in progress.",
    ),
    "live.connecting": ("Verbinden…", "Verbinde…", "Connecting…"),
    "live.connected": ("Live", "Live", "Live"),
    "live.not_enabled": (
        "LiveCenter is voor uw organisatie niet vrijgegeven. Neem contact op met uw provider.",
        "Das LiveCenter ist für Ihre Organisation nicht freigeschaltet. Bitte wenden Sie sich"
        " an Ihren Anbieter.",
        "LiveCenter is not enabled for your organisation. Please contact your provider.",
    ),
    # jobs (background work: exports, mail, purges)
    "nav.jobs": ("Taken", "Aufträge", "Jobs"),
    "jobs.title": ("Achtergrondtaken", "Hintergrundaufträge", "Background jobs"),
    "jobs.created": ("Aangemaakt", "Erstellt", "Created"),
    "jobs.tenant": ("Klant", "Kunde", "Tenant"),
    "jobs.kind": ("Soort", "Art", "Kind"),
    "jobs.state": ("Status", "Status", "State"),
    "jobs.state.queued": ("In de wachtrij", "Wartend", "Queued"),
    "jobs.state.running": ("Bezig", "Läuft", "Running"),
    "jobs.state.done": ("Klaar", "Fertig", "Done"),
    "jobs.state.failed": ("Mislukt", "Fehlgeschlagen", "Failed"),
    "jobs.progress": ("Voortgang", "Fortschritt", "Progress"),
    "jobs.attempts": ("Pogingen", "Versuche", "Attempts"),
    "jobs.message": ("Melding", "Meldung", "Message"),
    "jobs.finished": ("Klaar om", "Beendet", "Finished"),
    "jobs.result": ("Resultaat", "Ergebnis", "Result"),
    "jobs.empty": ("Nog geen taken.", "Noch keine Aufträge.", "No jobs yet."),
    # operator
    # reports, time zone and usage for billing (issue 8 section 5)
    "calls.audio_expired": ("audio verlopen", "Audio abgelaufen", "audio expired"),
    "calls.audio_deleted": ("audio verwijderd", "Audio gelöscht", "audio deleted"),
    "nav.usage": ("Verbruik", "Nutzung", "Usage"),
    "usage.title": ("Verbruik per maand", "Nutzung pro Monat", "Usage per month"),
    "usage.month": ("Maand", "Monat", "Month"),
    "usage.show": ("Tonen", "Anzeigen", "Show"),
    "usage.csv": ("CSV downloaden", "CSV herunterladen", "Download CSV"),
    "usage.hint": (
        "Maanden in de tijdzone van elke klant; opslag is de huidige stand.",
        "Monate in der Zeitzone jedes Kunden; Speicher ist der aktuelle Stand.",
        "Months in each tenant's time zone; storage is as of now.",
    ),
    "usage.timezone": ("Tijdzone", "Zeitzone", "Time zone"),
    "usage.recorded_users": ("Opgenomen gebruikers", "Aufgezeichnete Benutzer", "Recorded users"),
    "usage.recordings": ("Opnames", "Aufnahmen", "Recordings"),
    "usage.minutes": ("Opgenomen minuten", "Aufgezeichnete Minuten", "Recorded minutes"),
    "usage.stored": ("Opgeslagen bytes", "Gespeicherte Bytes", "Bytes stored"),
    "usage.retention": ("Bewaartermijn", "Aufbewahrung", "Retention"),
    "usage.quota": ("Minutenquotum", "Minutenkontingent", "Minute quota"),
    "usage.empty": ("Geen klanten.", "Keine Kunden.", "No tenants."),
    "op.title": ("Klanten", "Kunden", "Tenants"),
    "op.create": ("Nieuwe klant", "Neuer Kunde", "New tenant"),
    "op.name": ("Naam", "Name", "Name"),
    "op.domains": ("SIP-domeinen", "SIP-Domänen", "SIP domains"),
    "op.numbers": ("Nummers", "Rufnummern", "Numbers"),
    "op.plan": ("Abonnement", "Tarif", "Plan"),
    "op.retention_range": (
        "Bewaartermijn (min–max dagen)",
        "Aufbewahrung (min–max Tage)",
        "Retention (min–max days)",
    ),
    "op.suspended": ("Geschorst", "Gesperrt", "Suspended"),
    "op.active": ("Actief", "Aktiv", "Active"),
    "op.suspend": ("Schorsen", "Sperren", "Suspend"),
    "op.resume": ("Heractiveren", "Entsperren", "Reactivate"),
    "op.users": ("Gebruikers", "Benutzer", "Users"),
    "op.usage": ("Gebruik", "Nutzung", "Usage"),
    "op.status": ("Status", "Status", "Status"),
    "op.list_hint": ("komma-gescheiden", "durch Kommas getrennt", "comma-separated"),
    "op.role": ("Rol", "Rolle", "Role"),
    "op.recorded": ("Opgenomen", "Aufgezeichnet", "Recorded"),
    "op.tenant": ("Klant", "Kunde", "Tenant"),
    "op.details": ("Beheren", "Verwalten", "Manage"),
    "op.add_user": ("Gebruiker toevoegen", "Benutzer hinzufügen", "Add user"),
    "op.aors": ("SIP-adressen", "SIP-Adressen", "SIP addresses"),
    # operator: number blocks and enablement (SPEC 2, 8)
    "op.blocks": ("Nummerblokken", "Rufnummernblöcke", "Number blocks"),
    "op.enablement": ("Vrijgave", "Freischaltung", "Enablement"),
    "op.enablement_hint": (
        "Pas inschakelen als de klant de verklaring heeft ondertekend.",
        "Erst freischalten, wenn der Kunde die Erklärung unterschrieben hat.",
        "Enable only once the customer has signed the declaration.",
    ),
    "op.feature.recording": ("Opnemen", "Aufzeichnung", "Recording"),
    "op.feature.listening": (
        "Meeluisteren (LiveCenter)",
        "Mithören (LiveCenter)",
        "Listening (LiveCenter)",
    ),
    "op.feature.coaching": ("Coaching", "Coaching", "Coaching"),
    "op.reference": ("Kenmerk verklaring", "Referenz der Erklärung", "Declaration reference"),
    "op.reference_required": (
        "Vul het kenmerk van de ondertekende verklaring in.",
        "Geben Sie die Referenz der unterschriebenen Erklärung an.",
        "Enter the reference of the signed declaration.",
    ),
    "op.enabled": ("Ingeschakeld", "Freigeschaltet", "Enabled"),
    "op.not_enabled": ("Niet ingeschakeld", "Nicht freigeschaltet", "Not enabled"),
    "op.enable": ("Inschakelen", "Freischalten", "Enable"),
    "op.disable": ("Uitschakelen", "Deaktivieren", "Disable"),
    "op.by": ("door", "von", "by"),
    # retention (issue 8): expired audio, legal holds, plan quota
    "rec.audio_expired": (
        "De audio is verlopen op",
        "Die Aufnahme ist abgelaufen am",
        "The audio expired on",
    ),
    "rec.on_hold": ("Juridisch vastgehouden (legal hold)", "Unter Legal Hold", "On legal hold"),
    "hold.title": ("Juridische bewaring (legal hold)", "Legal Hold", "Legal holds"),
    "hold.hint": (
        "Een legal hold houdt opnamen vast: niets verloopt of wordt verwijderd "
        "tot hij is opgeheven.",
        "Ein Legal Hold hält Aufnahmen fest: nichts läuft ab oder wird gelöscht, "
        "bis er aufgehoben ist.",
        "A legal hold keeps recordings: nothing expires or is deleted until it is lifted.",
    ),
    "hold.scope.tenant": ("hele organisatie", "ganze Organisation", "whole organisation"),
    "hold.scope.user": ("gebruiker", "Benutzer", "user"),
    "hold.scope.recording": ("opname", "Aufnahme", "recording"),
    "hold.scope": ("Geldt voor", "Gilt für", "Covers"),
    "hold.reason": ("Reden", "Grund", "Reason"),
    "hold.place": ("Legal hold plaatsen", "Legal Hold setzen", "Place legal hold"),
    "hold.lift": ("Opheffen", "Aufheben", "Lift"),
    "hold.none": ("Geen actieve legal holds", "Keine aktiven Legal Holds", "No active legal holds"),
    "settings.quota_used": ("Minuten gebruikt", "Minuten verbraucht", "Minutes used"),
    "legal.not_enabled": (
        "Opnemen is nog niet ingeschakeld door uw provider. Dat gebeurt zodra uw "
        "ondertekende verklaring binnen is; daarna kunt u de kennisgeving accepteren.",
        "Die Aufzeichnung wurde von Ihrem Anbieter noch nicht freigeschaltet. Das geschieht, "
        "sobald Ihre unterschriebene Erklärung vorliegt; danach können Sie den Hinweis "
        "akzeptieren.",
        "Your provider has not enabled recording yet. That happens once your signed "
        "declaration has been received; then you can accept the notice.",
    ),
    # users (issue 15): the list, the profile's recording choice, users in bulk by CSV
    "nav.users": ("Gebruikers", "Benutzer", "Users"),
    "users.title": ("Gebruikers", "Benutzer", "Users"),
    "users.name": ("Naam", "Name", "Name"),
    "users.numbers": ("Nummers", "Rufnummern", "Numbers"),
    "users.devices": ("Apparaten (AOR)", "Endgeräte (AOR)", "Devices (AOR)"),
    "users.email": ("E-mail", "E-Mail", "E-mail"),
    "users.role": ("Rol", "Rolle", "Role"),
    "users.teams": ("Team", "Team", "Team"),
    "users.recording": ("Gespreksopname", "Gesprächsaufzeichnung", "Call recording"),
    "users.not_listed": (
        "Niet op de opnamelijst",
        "Nicht auf der Aufzeichnungsliste",
        "Not on the recording list",
    ),
    "users.profile": ("Gebruikersprofiel", "Benutzerprofil", "User profile"),
    "users.back": ("Naar de gebruikers", "Zu den Benutzern", "Back to users"),
    "users.recording_hint": (
        "Elke keuze zet de gebruiker op de opnamelijst van Instellingen › Opnemen; "
        "\u201cNooit\u201d houdt de gebruiker erop, maar neemt niets op.",
        "Jede Auswahl setzt den Benutzer auf die Aufzeichnungsliste unter Einstellungen › "
        "Aufzeichnung; \u201eNie\u201c behält ihn dort, zeichnet aber nichts auf.",
        "Any choice puts the user on the recording list of Settings › Recording; "
        "\u201cNever\u201d keeps them on it but records nothing.",
    ),
    "users.notice_needed": (
        "Accepteer eerst de juridische kennisgeving in",
        "Akzeptieren Sie zuerst den rechtlichen Hinweis unter",
        "First accept the legal notice in",
    ),
    "users.csv": ("Gebruikers in bulk (CSV)", "Benutzer per CSV", "Users in bulk (CSV)"),
    "users.csv_hint": (
        "Bestaande gebruikers worden op toestelnummer herkend en bijgewerkt, nieuwe "
        "aangemaakt. Het bestand wordt eerst helemaal gecontroleerd: bij een fout "
        "verandert er niets.",
        "Bestehende Benutzer werden an der Nebenstelle erkannt und aktualisiert, neue "
        "angelegt. Die Datei wird zuerst ganz geprüft: bei einem Fehler ändert sich nichts.",
        "Existing users are matched by extension and updated, new ones are created. The "
        "whole file is checked first: if a line is wrong, nothing changes.",
    ),
    "users.csv_values": (
        "meerdere waarden in een cel scheiden met",
        "mehrere Werte in einer Zelle trennen mit",
        "separate several values in a cell with",
    ),
    "users.csv_modes": ("Opnamestatus", "Aufzeichnungsmodi", "Recording modes"),
    "users.csv_export": ("Exporteren (CSV)", "Exportieren (CSV)", "Export (CSV)"),
    "users.csv_import": ("Importeren", "Importieren", "Import"),
    "users.csv_file": ("CSV-bestand", "CSV-Datei", "CSV file"),
    "users.csv_choose": ("Kies eerst een bestand", "Wählen Sie zuerst eine Datei", "Choose a file"),
    "users.csv_line": ("Regel", "Zeile", "Line"),
    "users.csv_reason": ("Reden", "Grund", "Reason"),
    "users.csv_refused": (
        "Niets geïmporteerd: verbeter deze regels en probeer opnieuw.",
        "Nichts importiert: korrigieren Sie diese Zeilen und versuchen Sie es erneut.",
        "Nothing was imported: correct these lines and try again.",
    ),
    "users.csv_done": (
        "Geïmporteerd: {created} nieuw, {updated} bijgewerkt, {unchanged} ongewijzigd.",
        "Importiert: {created} neu, {updated} aktualisiert, {unchanged} unverändert.",
        "Imported: {created} new, {updated} updated, {unchanged} unchanged.",
    ),
    # bulk download (issue 8 section 3, the Callvoip manual): Reports' button, export pages
    "bulk.button": ("Bulk download", "Massen-Download", "Bulk download"),
    "bulk.hint": (
        "Kies een maand (en eventueel gebruikers); je ontvangt een e-mail met de link naar "
        "de ZIP-bestanden.",
        "Wählen Sie einen Monat (und optional Benutzer); Sie erhalten eine E-Mail mit dem "
        "Link zu den ZIP-Dateien.",
        "Pick a month (and optionally users); you receive an e-mail with the link to the "
        "ZIP files.",
    ),
    "bulk.users": ("Gebruikers", "Benutzer", "Users"),
    "bulk.users_hint": (
        "Geen keuze: de hele organisatie",
        "Keine Auswahl: die ganze Organisation",
        "None chosen: the whole organisation",
    ),
    "bulk.start": ("Bulk download aanvragen", "Massen-Download anfordern", "Request download"),
    "exports.title": ("Bulk download", "Massen-Download", "Bulk download"),
    "exports.all": ("Alle bulk downloads", "Alle Massen-Downloads", "All bulk downloads"),
    "exports.month": ("Maand", "Monat", "Month"),
    "exports.state": ("Status", "Status", "State"),
    "exports.state.queued": ("in de wachtrij", "in der Warteschlange", "queued"),
    "exports.state.running": ("wordt gemaakt", "wird erstellt", "being made"),
    "exports.state.ready": ("klaar", "bereit", "ready"),
    "exports.state.failed": ("mislukt", "fehlgeschlagen", "failed"),
    "exports.state.expired": ("verlopen", "abgelaufen", "expired"),
    "exports.scope": ("Opnames van", "Aufnahmen von", "Recordings of"),
    "exports.everyone": (
        "de hele organisatie",
        "der ganzen Organisation",
        "the whole organisation",
    ),
    "exports.progress": ("Voortgang", "Fortschritt", "Progress"),
    "exports.failed": ("De bulk download is mislukt:", "Der Massen-Download ist fehlgeschlagen:",
                       "The bulk download failed:"),
    "exports.expired_text": (
        "Deze bulk download is verlopen; de bestanden zijn verwijderd.",
        "Dieser Massen-Download ist abgelaufen; die Dateien wurden gelöscht.",
        "This bulk download has expired; its files have been deleted.",
    ),
    "exports.recordings": ("Opnames", "Aufnahmen", "Recordings"),
    "exports.empty": (
        "geen opnames in deze maand: het ZIP-bestand bevat alleen het manifest",
        "keine Aufnahmen in diesem Monat: die ZIP-Datei enthält nur das Manifest",
        "no recordings in this month: the ZIP file holds only the manifest",
    ),
    "exports.file": ("Deel", "Teil", "Part"),
    "exports.size": ("Grootte", "Größe", "Size"),
    "exports.download": ("Downloaden", "Herunterladen", "Download"),
    "exports.expires": ("Verloopt", "Läuft ab", "Expires"),
    "exports.requested": ("Aangevraagd", "Angefordert", "Requested"),
    "exports.none": ("Nog geen bulk downloads.", "Noch keine Massen-Downloads.",
                     "No bulk downloads yet."),
    "exports.mail.pending": ("De e-mail wordt verstuurd.", "Die E-Mail wird gesendet.",
                             "The e-mail is being sent."),
    "exports.mail.sent": ("E-mail met de link verstuurd aan", "E-Mail mit dem Link gesendet an",
                          "E-mail with the link sent to"),
    "exports.mail.retrying": (
        "De mailserver is nu niet bereikbaar; de e-mail wordt later opnieuw verstuurd.",
        "Der Mailserver ist gerade nicht erreichbar; die E-Mail wird später erneut gesendet.",
        "The mail server cannot be reached now; the e-mail is sent again later.",
    ),
    "exports.mail.failed": ("De e-mail kon niet worden verstuurd:",
                            "Die E-Mail konnte nicht gesendet werden:",
                            "The e-mail could not be sent:"),
    "exports.mail.not_sent": ("Er is geen e-mail verstuurd:", "Es wurde keine E-Mail gesendet:",
                              "No e-mail was sent:"),
    "exports.mail.reason.no-address": (
        "er is geen e-mailadres bekend (profiel of afleveradres). De bestanden staan hieronder.",
        "keine E-Mail-Adresse bekannt (Profil oder Zustelladresse). Die Dateien stehen unten.",
        "no e-mail address is known (profile or delivery address). The files are below.",
    ),
    "exports.mail.reason.no-mail-server": (
        "er is geen mailserver ingesteld. De bestanden staan hieronder.",
        "kein Mailserver eingerichtet. Die Dateien stehen unten.",
        "no mail server is set up. The files are below.",
    ),
    "exports.mail.reason.not-ready": ("de export was niet klaar.", "der Export war nicht bereit.",
                                      "the export was not ready."),
    "exports.mail.reason.unknown": ("onbekende reden.", "unbekannter Grund.", "unknown reason."),
    # tenant termination and deletion receipts (operator; portal/retention/termination_pages.py)
    "term.title": ("Klant opheffen", "Kunden kündigen", "Terminate tenant"),
    "term.warning": (
        "Opheffen vernietigt alle opnames, gesprekken, gebruikers en persoonsgegevens "
        "van deze klant. Dit kan niet ongedaan worden gemaakt; een ontvangstbewijs blijft.",
        "Die Kündigung vernichtet alle Aufzeichnungen, Gespräche, Benutzer und "
        "personenbezogenen Daten dieses Kunden. Unwiderruflich; ein Löschnachweis bleibt.",
        "Terminating destroys all recordings, calls, users and personal data of this "
        "tenant. This cannot be undone; a receipt is kept.",
    ),
    "term.ask": ("Opheffen…", "Kündigen…", "Terminate…"),
    "term.type_name": (
        "Typ ter bevestiging de naam",
        "Zur Bestätigung den Namen eingeben",
        "To confirm, type the name",
    ),
    "term.valid_until": ("Bevestigen kan tot", "Bestätigung möglich bis", "Confirm before"),
    "term.confirm": ("Definitief opheffen", "Endgültig kündigen", "Terminate for good"),
    "term.done": ("Opgeheven", "Gekündigt", "Terminated"),
    "term.receipt": ("Ontvangstbewijs", "Löschnachweis", "Receipt"),
    "term.receipts": ("Verwijderbewijzen", "Löschnachweise", "Deletion receipts"),
    "term.download": ("Bewijs downloaden", "Nachweis herunterladen", "Download receipt"),
    "term.when": ("Wanneer", "Wann", "When"),
    "term.by": ("Door", "Von", "By"),
    "term.kind": ("Soort", "Art", "Kind"),
    "term.terminated": ("opgeheven", "gekündigt", "terminated"),
    "term.count.users": ("Gebruikers", "Benutzer", "Users"),
    "term.count.calls": ("Gesprekken", "Gespräche", "Calls"),
    "term.count.recordings": ("Opnames", "Aufzeichnungen", "Recordings"),
    "term.count.audio_files": ("Audiobestanden", "Audiodateien", "Audio files"),
    "term.count.audio_bytes": ("Bytes audio", "Bytes Audio", "Audio bytes"),
    "term.count.export_files": ("Exportbestanden", "Exportdateien", "Export files"),
    "term.count.export_bytes": ("Bytes export", "Bytes Export", "Export bytes"),
    "term.count.files": ("Vernietigde bestanden", "Vernichtete Dateien", "Files destroyed"),
    "term.error.legal-hold-active": (
        "Er loopt een juridische bewaarplicht voor deze klant: hef die eerst op.",
        "Für diesen Kunden besteht eine Aufbewahrungspflicht (Legal Hold): zuerst aufheben.",
        "A legal hold of this tenant is active: lift it first.",
    ),
    "term.error.termination-name-mismatch": (
        "Die naam is niet precies de naam van de klant.",
        "Der Name stimmt nicht genau mit dem des Kunden überein.",
        "That is not exactly the tenant's name.",
    ),
    "term.error.termination-token-invalid": (
        "Deze bevestiging is niet (meer) geldig: begin opnieuw.",
        "Diese Bestätigung ist nicht (mehr) gültig: bitte neu beginnen.",
        "This confirmation is not valid (any more): start again.",
    ),
    "term.error.termination-token-expired": (
        "De bevestiging is verlopen (10 minuten): begin opnieuw.",
        "Die Bestätigung ist abgelaufen (10 Minuten): bitte neu beginnen.",
        "The confirmation expired (10 minutes): start again.",
    ),
    # Playback as an app (issue 9): home screen, lists, notifications (portal/playback/pages.py)
    "nav.home": ("Opnames", "Aufnahmen", "Recordings"),
    "nav.lists": ("Mijn lijsten", "Meine Listen", "My lists"),
    "nav.notifications": ("Meldingen", "Benachrichtigungen", "Notifications"),
    "home.title": ("Opnames", "Aufnahmen", "Recordings"),
    "home.filter": ("Soort opname", "Art der Aufnahme", "Kind of recording"),
    "home.mark.unsaved": ("Niet bewaard", "Nicht behalten", "Not kept"),
    "home.mark.saved": ("Bewaarde Playback", "Behaltenes Playback", "Kept Playback"),
    "home.mark.standard": ("Standaard opname", "Standardaufnahme", "Standard recording"),
    "home.swipe_hint": (
        "Veeg een niet bewaarde opname naar rechts om hem te bewaren.",
        "Wischen Sie eine nicht behaltene Aufnahme nach rechts, um sie zu behalten.",
        "Swipe a recording that is not kept to the right to keep it.",
    ),
    "home.empty": ("Geen opnames.", "Keine Aufnahmen.", "No recordings."),
    "home.keep": ("Bewaren", "Behalten", "Keep"),
    "home.discard": ("Verwijderen", "Verwerfen", "Discard"),
    "home.discard_title": ("Opname verwijderen?", "Aufnahme verwerfen?", "Discard the recording?"),
    "home.discard_text": (
        "De opname wordt meteen en definitief verwijderd.",
        "Die Aufnahme wird sofort und endgültig gelöscht.",
        "The recording is deleted at once and for good.",
    ),
    "home.inbox": (
        "Opnames die op uw antwoord wachten",
        "Aufnahmen, die auf Ihre Antwort warten",
        "Recordings waiting for your answer",
    ),
    "home.time_left": ("nog", "noch", "time left:"),
    "home.d": ("d", "T", "d"),
    "home.h": ("u", "Std", "h"),
    "home.min": ("min", "Min", "min"),
    "home.unknown": ("Onbekend nummer", "Unbekannte Nummer", "Unknown number"),
    "home.kept": ("Bewaard", "Behalten", "Kept"),
    "home.discarded": ("Verwijderd", "Verworfen", "Discarded"),
    "lists.title": ("Mijn lijsten", "Meine Listen", "My lists"),
    "lists.intro": (
        "Na ieder gesprek vragen we of u de opname wilt bewaren. Met deze lijsten "
        "beperkt u die vragen.",
        "Nach jedem Gespräch fragen wir, ob Sie die Aufnahme behalten möchten. Mit "
        "diesen Listen schränken Sie diese Fragen ein.",
        "After every call we ask whether to keep the recording. These lists spare "
        "you those questions.",
    ),
    "lists.blacklist": ("Blacklist", "Blacklist", "Blacklist"),
    "lists.whitelist": ("Whitelist", "Whitelist", "Whitelist"),
    "lists.blacklist_explained": (
        "Contacten waarvan de Playback nooit wordt bewaard: nooit bewaard, nooit gevraagd.",
        "Kontakte, deren Playback nie behalten wird: nie behalten, nie gefragt.",
        "Contacts whose Playback is never kept: never kept, never asked.",
    ),
    "lists.whitelist_explained": (
        "Contacten waarvan de Playback altijd wordt bewaard: altijd bewaard, nooit gevraagd.",
        "Kontakte, deren Playback immer behalten wird: immer behalten, nie gefragt.",
        "Contacts whose Playback is always kept: always kept, never asked.",
    ),
    "lists.empty": ("Nog geen contacten.", "Noch keine Kontakte.", "No contacts yet."),
    "lists.value": (
        "Nummer of SIP-adres",
        "Nummer oder SIP-Adresse",
        "Number or SIP address",
    ),
    "rec.share_native": ("Delen via…", "Teilen über…", "Share via…"),
    "push.title": ("Meldingen", "Benachrichtigungen", "Notifications"),
    "push.this_device": ("Dit apparaat", "Dieses Gerät", "This device"),
    "push.toggle": (
        "Meldingen op dit apparaat",
        "Benachrichtigungen auf diesem Gerät",
        "Notifications on this device",
    ),
    "push.unsupported": (
        "Deze browser ondersteunt geen pushmeldingen (op een iPhone: zet de app eerst op "
        "het beginscherm).",
        "Dieser Browser unterstützt keine Push-Benachrichtigungen (auf einem iPhone: die "
        "App zuerst zum Home-Bildschirm hinzufügen).",
        "This browser does not support push notifications (on an iPhone: add the app to "
        "the home screen first).",
    ),
    "push.denied": (
        "Meldingen zijn voor deze site geblokkeerd; sta ze toe in de instellingen van de browser.",
        "Benachrichtigungen sind für diese Seite blockiert; erlauben Sie sie in den "
        "Browser-Einstellungen.",
        "Notifications are blocked for this site; allow them in the browser's settings.",
    ),
    "push.devices": (
        "Apparaten met meldingen",
        "Geräte mit Benachrichtigungen",
        "Devices with notifications",
    ),
    "push.no_devices": ("Nog geen apparaten.", "Noch keine Geräte.", "No devices yet."),
    "push.device": ("Apparaat", "Gerät", "Device"),
    "push.since": ("sinds", "seit", "since"),
    "push.on": ("op", "auf", "on"),
    "push.email": ("E-mail", "E-Mail", "E-mail"),
    "push.email_toggle": (
        "Vraag het me na ieder gesprek ook per e-mail",
        "Fragen Sie mich nach jedem Gespräch auch per E-Mail",
        "Ask me by e-mail too after every call",
    ),
    "push.no_email": (
        "Voor uw account is geen e-mailadres bekend; vraag het uw beheerder.",
        "Für Ihr Konto ist keine E-Mail-Adresse hinterlegt; fragen Sie Ihren Administrator.",
        "Your account has no e-mail address; ask your administrator.",
    ),
}

_INDEX: Final[dict[Language, int]] = {"nl": 0, "de": 1, "en": 2}


def is_language(value: object) -> bool:
    return value in LANGUAGES


def choose_language(*candidates: str | None) -> Language:
    """The first candidate that is a supported language, else Dutch."""
    for candidate in candidates:
        if candidate is not None:
            code = candidate.strip().lower()[:2]
            if code == "nl":
                return "nl"
            if code == "de":
                return "de"
            if code == "en":
                return "en"
    return DEFAULT_LANGUAGE


def from_accept_language(header: str | None) -> str | None:
    """The first supported language in an Accept-Language header (order, not weights)."""
    if not header:
        return None
    for part in header.split(","):
        code = part.split(";", 1)[0].strip().lower()[:2]
        if is_language(code):
            return code
    return None


def translate(language: Language, key: str) -> str:
    words = _WORDS.get(key)
    if words is None:
        return key  # visible in the page, and caught by the catalogue test
    return words[_INDEX[language]]


def catalogue(language: Language) -> dict[str, str]:
    """All words of one language (the pages' scripts read them for messages)."""
    index = _INDEX[language]
    return {key: words[index] for key, words in _WORDS.items()}


def known_keys() -> frozenset[str]:
    return frozenset(_WORDS)
