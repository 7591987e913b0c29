"""Error types shared by every layer, and every HTTP error id with its status.

Two families, as in h11: a ``LocalProtocolError`` is our own bug or misuse of
an API (an illegal state transition); a ``RemoteProtocolError`` is bad input
from a peer and carries the SIP status to answer with.

HTTP errors carry a stable ``error_id`` that clients may rely on. ``ErrorId``
lists every one of them exactly once, with the HTTP status it is answered
with and what it means; a raise names a member, never a string
(``tests/api/test_error_ids.py`` keeps it so).
"""

from __future__ import annotations

from enum import StrEnum, unique


class LocalProtocolError(Exception):
    """We tried to do something the protocol forbids in the current state."""


class RemoteProtocolError(Exception):
    """The peer sent something we cannot accept.

    ``status`` is the SIP status code to answer with (400, 481, 488, ...);
    ``warning`` is the text for a ``Warning: 399`` header, when useful.
    """

    def __init__(self, message: str, status: int = 400, warning: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.warning = warning

    @property
    def reason(self) -> str:
        return str(self)


@unique
class ErrorId(StrEnum):
    """Every HTTP error id: the wire value, its HTTP status, one line of meaning."""

    status: int
    meaning: str

    def __new__(cls, value: str, status: int, meaning: str) -> ErrorId:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.meaning = meaning
        return member

    # generic, one per exception class below
    BAD_REQUEST = "bad-request", 400, "the request cannot be served as sent"
    UNAUTHORIZED = "unauthorized", 401, "credentials are missing or wrong"
    FORBIDDEN = "forbidden", 403, "the caller may not do this"
    NOT_FOUND = "not-found", 404, "no such thing (or not the caller's tenant's)"
    CONFLICT = "conflict", 409, "the change conflicts with what is stored"
    INVALID_INPUT = "invalid-input", 422, "a field or parameter is not valid; the message names it"

    # logging in, sessions, tokens, roles
    AUTH_REQUIRED = "auth-required", 401, "log in or send a bearer token"
    AUTH_INVALID = (
        "auth-invalid",
        401,
        "the token or account is not valid (revoked, gone, deactivated)",
    )
    LOGIN_FAILED = "login-failed", 401, "the login or the password is wrong (one answer for both)"
    SESSION_EXPIRED = "session-expired", 401, "the portal session has ended; log in again"
    CSRF_FAILED = "csrf-failed", 403, "an unsafe request of a cookie session lacks its CSRF token"
    ROLE_REQUIRED = "role-required", 403, "the caller's role may not do this"
    TENANT_SUSPENDED = "tenant-suspended", 403, "the caller's tenant is suspended"
    PASSWORD_WRONG = "password-wrong", 403, "the old password given to change it is wrong"
    PASSWORD_TOO_SHORT = "password-too-short", 422, "the new password is too short"
    PASSWORD_TOO_LONG = "password-too-long", 422, "the new password is too long"
    LOGIN_UNAVAILABLE = "login-unavailable", 409, "this login name cannot be used"
    LOGIN_THROTTLED = (
        "login-throttled",
        429,
        "too many failed logins; Retry-After says when to retry",
    )
    LOGIN_BUSY = "login-busy", 503, "every password-hashing slot stayed taken; retry shortly"
    TOKEN_NOT_FOUND = "token-not-found", 404, "no such API token"
    INTERACTIVE_SESSION_REQUIRED = (
        "interactive-session-required",
        403,
        "this needs the admin's own portal session, not an API token",
    )

    # tenants, users, claims, enablement
    TENANT_NOT_FOUND = "tenant-not-found", 404, "no such tenant (or not the caller's)"
    TENANT_EXISTS = "tenant-exists", 409, "another tenant has this name, domain, number or block"
    TENANT_CLAIM_IN_USE = "tenant-claim-in-use", 409, "users still use a claim being taken away"
    USER_NOT_FOUND = "user-not-found", 404, "no such user in this tenant"
    USER_EXISTS = "user-exists", 409, "another user of the tenant has this AOR, number or extension"
    OUTSIDE_TENANT = (
        "outside-tenant",
        422,
        "a user's AOR or number lies outside the tenant's claims",
    )
    OWN_ACCOUNT = "own-account", 409, "an admin cannot take away their own admin access"
    NO_CHANGE = "no-change", 422, "the request changes nothing"
    USERS_CSV_INVALID = "users-csv-invalid", 422, "the users CSV has no users or a bad row"
    CSV_TOO_LARGE = "csv-too-large", 413, "the users CSV is larger than allowed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type", 415, "the body's content type is refused"
    DECLARATION_REQUIRED = (
        "declaration-required",
        422,
        "enabling needs the signed declaration's reference",
    )
    RECORDING_NOT_ENABLED = "recording-not-enabled", 409, "the operator has not enabled recording"
    LEGAL_NOTICE_REQUIRED = (
        "legal-notice-required",
        409,
        "the admin must accept the legal notice first",
    )
    LEGAL_NOTICE_VERSION = (
        "legal-notice-version",
        409,
        "the accepted notice is not the current version",
    )
    INVALID_TIMEZONE = "invalid-timezone", 422, "not an IANA time zone"

    # teams, recording lists, labels, contacts
    TEAM_NOT_FOUND = "team-not-found", 404, "no such team"
    TEAM_EXISTS = "team-exists", 409, "a team with this name exists"
    MEMBER_NOT_FOUND = "member-not-found", 404, "the user is not in this team"
    LEAD_MUST_BE_LISTENER = "lead-must-be-listener", 422, "a team lead must have the listener role"
    ALREADY_LISTED = "already-listed", 409, "the user is on the recording list already"
    NOT_LISTED = "not-listed", 404, "the user is not on the recording list"
    CONTACT_EXISTS = "contact-exists", 409, "the contact is on one of the lists already"
    CONTACT_NOT_FOUND = "contact-not-found", 404, "no such contact"
    LABEL_EXISTS = "label-exists", 409, "the recording has this label already"
    LABEL_NOT_FOUND = "label-not-found", 404, "no such label"
    LABEL_TOO_LONG = "label-too-long", 422, "the label is too long"
    TOO_MANY_LABELS = "too-many-labels", 422, "the recording has the most labels allowed"

    # reports, recordings, audio, share links
    BAD_CURSOR = "bad-cursor", 422, "the cursor is not one of this list and filters"
    RECORDING_NOT_FOUND = "recording-not-found", 404, "no such recording the caller may see"
    AUDIO_EXPIRED = "audio-expired", 410, "the call is listed, its audio expired or was purged"
    AUDIO_GONE = "audio-gone", 410, "the audio blob is no longer stored"
    STORAGE_UNAVAILABLE = "storage-unavailable", 503, "the blob store did not answer; retry"
    STREAM_ONLY = "stream-only", 403, "this tenant's recordings play in the browser only"
    PLAYER_ONLY = "player-only", 403, "audio plays in the portal's player only"
    PLAY_LINK_EXPIRED = "play-link-expired", 403, "the play link expired; reload the page"
    BAD_RANGE = "bad-range", 416, "the Range header is not understood"
    RANGE_UNSATISFIABLE = "range-unsatisfiable", 416, "the range lies outside the file"
    SHARE_NOT_FOUND = "share-not-found", 404, "no such share link, or it expired"
    INVALID_MONTH = "invalid-month", 422, "not a month (YYYY-MM), or before any recording"
    MONTH_IN_FUTURE = "month-in-future", 422, "the month has not begun yet"

    # recording sources
    SOURCE_NOT_FOUND = "source-not-found", 404, "no such recording source"
    SOURCE_EXISTS = "source-exists", 409, "a source with this name exists"
    SOURCE_NAME_INVALID = "source-name-invalid", 422, "a source's name has 1 to 200 characters"
    SOURCE_NETWORK_INVALID = "source-network-invalid", 422, "not an address or CIDR, or repeated"
    SOURCE_FINGERPRINT_INVALID = (
        "source-fingerprint-invalid",
        422,
        "not a SHA-256 certificate fingerprint, or repeated",
    )
    SOURCE_IDENTITY_REQUIRED = "source-identity-required", 422, "a network or fingerprint is needed"
    SOURCE_LIMIT_INVALID = "source-limit-invalid", 422, "a source limit is out of its range"
    SOURCE_TENANT_UNKNOWN = "source-tenant-unknown", 422, "a tenant named for the source is unknown"
    SOURCE_KIND_INVALID = "source-kind-invalid", 422, "a source's kind is siprec, pbx or trunk"
    ROUTE_NOT_FOUND = "route-not-found", 404, "no such call route"
    ROUTE_EXISTS = "route-exists", 409, "the source already has a route with this prefix"
    ROUTE_PREFIX_INVALID = (
        "route-prefix-invalid",
        422,
        "a route's prefix is empty or +?[0-9*#]{1,31}",
    )
    ROUTE_TARGET_INVALID = (
        "route-target-invalid",
        422,
        "a route's target is sip:HOST[:PORT][;transport=udp|tcp|tls]",
    )
    ROUTE_SOURCE_INVALID = (
        "route-source-invalid",
        422,
        "a route's source is unknown or is not a pbx or trunk",
    )

    # silent coaching (SPEC 7; b2bua/coaching.py: the same refusals answer *98*<ext> in SIP)
    COACHING_NOT_ENABLED = (
        "coaching-not-enabled",
        403,
        "the operator has not enabled coaching for the tenant",
    )
    COACHING_NOT_PERMITTED = (
        "coaching-not-permitted",
        403,
        "the user may not coach this call (role, coaching permission, not their team's)",
    )
    COACHING_NO_EXTENSION = "coaching-no-extension", 404, "no user of the tenant has that extension"
    COACHING_NOT_BRIDGED = (
        "coaching-not-bridged",
        409,
        "the call is not one callvault bridges (only B2BUA calls can be coached)",
    )
    COACHING_BUSY = "coaching-busy", 409, "someone already coaches this call"
    COACHING_NO_PHONE = (
        "coaching-no-phone",
        422,
        "callvault cannot call the supervisor: no extension, or no route to it",
    )
    # LiveCenter (SPEC 7): the calls in progress, record now
    LISTENING_NOT_ENABLED = (
        "listening-not-enabled",
        403,
        "the operator has not enabled LiveCenter (listening, record now) for the tenant",
    )
    LIVE_CALL_NOT_FOUND = "live-call-not-found", 404, "no such call in progress the caller may see"
    LIVE_CALL_NOT_RECORDABLE = (
        "live-call-not-recordable",
        409,
        "nobody of the tenant in the call may be recorded (recording list, mode never, blacklist)",
    )
    ROUTE_TENANT_INVALID = (
        "route-tenant-invalid",
        422,
        "the route's source may not record for this tenant (or the tenant is unknown)",
    )

    # plans, retention, legal holds, receipts, termination
    PLAN_NOT_FOUND = "plan-not-found", 404, "no plan of this name"
    PLAN_EXISTS = "plan-exists", 409, "a plan of this name exists"
    PLAN_IN_USE = "plan-in-use", 409, "tenants are on the plan"
    RETENTION_RANGE_INVALID = (
        "retention-range-invalid",
        422,
        "a plan's retention range is not valid",
    )
    RETENTION_OUT_OF_PLAN = "retention-out-of-plan", 422, "the retention lies outside the plan"
    BULK_NEEDS_180_DAYS = "bulk-needs-180-days", 422, "bulk download needs a long retention"
    STREAM_ONLY_NEEDS_PORTAL = (
        "stream-only-needs-portal",
        422,
        "stream-only mails a link to the portal: the portal must keep the recordings",
    )
    LEGAL_HOLD_NOT_FOUND = "legal-hold-not-found", 404, "no such legal hold"
    LEGAL_HOLD_LIFTED = "legal-hold-lifted", 409, "the legal hold was lifted already"
    LEGAL_HOLD_ACTIVE = "legal-hold-active", 409, "a legal hold of the tenant is active"
    HOLD_SCOPE_INVALID = "hold-scope-invalid", 422, "a hold's scope and its ids do not agree"
    REASON_REQUIRED = "reason-required", 422, "placing or lifting a legal hold needs a reason"
    RECEIPT_NOT_FOUND = "receipt-not-found", 404, "no such deletion receipt (or no file list)"
    RECEIPT_INTEGRITY = "receipt-integrity", 500, "a stored receipt does not match its SHA-256"
    TERMINATION_TOKEN_INVALID = "termination-token-invalid", 422, "not this tenant's token"
    TERMINATION_TOKEN_EXPIRED = "termination-token-expired", 422, "the confirmation token expired"
    TERMINATION_NAME_MISMATCH = (
        "termination-name-mismatch",
        422,
        "the typed name is not the tenant's",
    )

    # bulk download (exports) and jobs
    EXPORT_NOT_FOUND = "export-not-found", 404, "no such export"
    EXPORT_NOT_READY = "export-not-ready", 404, "the export is not ready yet"
    EXPORT_FILE_NOT_FOUND = "export-file-not-found", 404, "no such file in the export"
    EXPORT_EXPIRED = "export-expired", 410, "the export expired and its files are gone"
    EXPORT_BULK_OFF = "export-bulk-off", 422, "bulk download is off for this tenant"
    EXPORT_MONTH_INVALID = "export-month-invalid", 422, "the month is not YYYY-MM"
    EXPORT_MONTH_FUTURE = "export-month-future", 422, "the month has not begun in the tenant's zone"
    EXPORT_USERS_INVALID = "export-users-invalid", 422, "too few or too many users named"
    EXPORT_USERS_UNKNOWN = "export-users-unknown", 422, "a user named is not of this tenant"
    EXPORT_TOO_MANY = "export-too-many", 409, "too many exports of the tenant are being made"
    JOB_NOT_FOUND = "job-not-found", 404, "no such job"

    # Playback's question (SPEC 6): keep or discard
    PLAYBACK_ANSWERED = "playback-answered", 409, "the recording was kept or discarded already"
    PLAYBACK_NOT_ASKED = "playback-not-asked", 409, "not an unsaved Playback recording"
    ACTION_TOKEN_INVALID = "action-token-invalid", 403, "the answer's token is not valid"
    ACTION_TOKEN_EXPIRED = "action-token-expired", 410, "the question expired with the recording"

    # Web Push devices (SPEC 6)
    PUSH_ENDPOINT_INVALID = (
        "push-endpoint-invalid",
        422,
        "a push endpoint must be an https URL of a public push service",
    )
    PUSH_KEYS_INVALID = "push-keys-invalid", 422, "push keys must be a P-256 key and a 16-byte auth"
    PUSH_DEVICES_LIMIT = "push-devices-limit", 409, "the user has the most push devices allowed"
    PUSH_SUBSCRIPTION_NOT_FOUND = "push-subscription-not-found", 404, "no such push device"

    # announcements (B2BUA, SPEC 3): a tenant's own prompts
    PROMPT_TOO_LARGE = "prompt-too-large", 413, "the prompt's file is larger than allowed"
    PROMPT_FORMAT = "prompt-format", 422, "a prompt must be a WAV or MP3 file"
    PROMPT_UNREADABLE = "prompt-unreadable", 422, "the prompt's audio cannot be decoded"
    PROMPT_TOO_LONG = "prompt-too-long", 422, "the prompt plays longer than allowed"
    PROMPT_TOO_SHORT = "prompt-too-short", 422, "the prompt is too short to be heard"
    PROMPT_SILENT = "prompt-silent", 422, "the prompt holds nothing but silence"
    PROMPT_NOT_FOUND = "prompt-not-found", 404, "the tenant has no own prompt of this kind"


class ApiError(Exception):
    """An error answered over HTTP with a stable machine id.

    The status is the id's unless the raise gives one (the subclasses only
    name the generic id of their status; a specific id brings its own).
    """

    error_id: ErrorId = ErrorId.BAD_REQUEST

    def __init__(
        self, message: str, *, error_id: ErrorId | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        if error_id is not None:
            self.error_id = error_id
        self.status: int = status if status is not None else self.error_id.status


class NotFound(ApiError):
    error_id = ErrorId.NOT_FOUND


class Forbidden(ApiError):
    error_id = ErrorId.FORBIDDEN


class Unauthorized(ApiError):
    error_id = ErrorId.UNAUTHORIZED


class Conflict(ApiError):
    error_id = ErrorId.CONFLICT


class InvalidInput(ApiError):
    error_id = ErrorId.INVALID_INPUT
