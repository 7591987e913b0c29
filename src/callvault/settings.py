"""Typed settings: defaults, then a TOML file, then ``CALLVAULT_*`` variables.

Invalid values and unknown keys are refused with a message naming the key
(``SettingsError``), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "CALLVAULT_"

# What one process runs (issue 13): media = SIP, RTP capture, the B2BUA and the finishing
# of this node's spools; web = portal and API; worker = the job runner (retention,
# exports, mail, push). ``callvault serve`` runs all three unless told otherwise.
Role = Literal["media", "web", "worker"]
ALL_ROLES: frozenset[Role] = frozenset(("media", "web", "worker"))
CONFIG_ENV = "CALLVAULT_CONFIG"
ENGINE_KNOBS = frozenset({"CALLVAULT_IO_URING", "CALLVAULT_CAPTURE_POLL_MS"})
"""Environment variables the media engine reads when it is imported
(``media/pump.py``: io_uring sends, the capture pump's timer), for benches and
diagnosis; not settings, but not unknown ones either."""


class SettingsError(Exception):
    """A setting is invalid; the message names the key and where it came from."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    data_dir: Path = Field(default=Path("data"), description="spool, blobs and SQLite live here")
    # which roles this process runs; env CALLVAULT_ROLES=media,worker, CLI --roles media,worker
    # (NoDecode: a comma list, not JSON, from the environment; ``_roles`` splits it)
    roles: Annotated[frozenset[Role], NoDecode] = ALL_ROLES
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite")
    sip_host: str = "127.0.0.1"
    sip_port: int = Field(default=5060, ge=0, le=65535)
    sip_tcp: bool = True
    public_address: str | None = Field(
        default=None, description="address put in SDP and Contact; default sip_host"
    )
    rtp_port_min: int = Field(default=20000, ge=1024, le=65534)
    rtp_port_max: int = Field(default=30000, ge=1025, le=65535)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    spool_flush_ms: int = Field(default=250, ge=10, le=1000)
    finish_workers: int = Field(default=1, ge=1, le=64)
    session_expires_s: int = Field(default=1800, ge=90)
    log_level: str = "INFO"
    # "json": one JSON object per line (time, level, logger, message) for log collectors
    log_format: Literal["text", "json"] = "text"
    # the mail server recordings and export links are sent through (None: no mail)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    # "starttls": upgrade after EHLO (port 587); "tls": implicit TLS (port 465)
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = Field(default=None, max_length=200)
    smtp_password: str | None = Field(default=None, max_length=200)
    smtp_from: str = Field(default="callvault@localhost", max_length=320)
    smtp_timeout_s: float = Field(default=30.0, gt=0, le=300)
    # bigger recordings are mailed as a link to the portal instead of an attachment
    mail_attachment_max_bytes: int = Field(default=10_000_000, ge=0)
    # the portal's address as users reach it, for links in e-mails
    public_url: str = Field(default="http://127.0.0.1:8080", max_length=300)
    # Web Push (Playback's question): how long one push service may take to answer; and,
    # for tests only, endpoints on a loopback address (plain http included) are accepted
    push_timeout_s: float = Field(default=10.0, gt=0, le=60)
    push_allow_http_loopback: bool = False
    # bulk download: ZIP parts are split at this size; the files stay this many days
    export_part_max_bytes: int = Field(default=2_000_000_000, ge=1_000_000)
    export_keep_days: int = Field(default=7, ge=1, le=90)
    # bearer token for GET /metrics (besides an operator's API token); None: operators only
    metrics_token: str | None = Field(default=None, min_length=24, max_length=200)
    # SIP over TLS listens on sip_tls_port once sip_tls_cert and sip_tls_key are set
    # (leave them unset to turn TLS off); sip_tls_ca holds the CAs (or the self-signed
    # certificates) that client certificates must chain to.
    sip_tls_port: int = Field(default=5061, ge=0, le=65535)
    sip_tls_cert: Path | None = None
    sip_tls_key: Path | None = None
    sip_tls_ca: Path | None = None
    sip_tcp_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    sip_tcp_idle_timeout_s: float = Field(default=600.0, gt=0)
    sip_tcp_max_connections_per_source: int = Field(default=100, ge=1)
    sip_tcp_max_connections: int = Field(default=1000, ge=1)
    # where finished recordings, exports and receipts are kept (issue 13): "local" under
    # data_dir/blobs, or "s3": an S3-compatible bucket (s3_endpoint_url None: AWS itself;
    # no key pair: boto3's own credential chain, e.g. an instance role)
    blob_store: Literal["local", "s3"] = "local"
    s3_endpoint_url: str | None = Field(default=None, max_length=300)
    s3_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    s3_region: str | None = Field(default=None, max_length=50)
    s3_access_key_id: str | None = Field(default=None, max_length=200)
    s3_secret_access_key: SecretStr | None = Field(default=None, max_length=200)
    # every key is stored under this prefix ("recordings/" → "recordings/<tenant>/...")
    s3_prefix: str = Field(default="", max_length=200, pattern=r"^([A-Za-z0-9][A-Za-z0-9._/-]*/)?$")
    s3_timeout_s: float = Field(default=30.0, gt=0, le=300)
    # finished blobs go to data_dir/outbox first and are uploaded with retry (storage/outbox.py):
    # an S3 outage never blocks finishing; off: straight to S3, finishing waits for it
    s3_outbox: bool = True
    s3_outbox_retry_max_s: float = Field(default=60.0, gt=0, le=3600)  # backoff's cap

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, value: object) -> object:
        """A comma list ("media,worker") from the environment or the command line."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple | set | frozenset) and not value:
            raise ValueError("name at least one of media, web, worker")
        return value

    @field_validator("sip_tls_cert", "sip_tls_key", "sip_tls_ca")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.sip_tls_cert is None) != (self.sip_tls_key is None):
            raise ValueError("sip_tls_cert and sip_tls_key must be set together")
        return self

    @model_validator(mode="after")
    def _s3(self) -> Settings:
        if self.blob_store == "s3" and self.s3_bucket is None:
            raise ValueError("blob_store = 's3' needs s3_bucket")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("s3_access_key_id and s3_secret_access_key must be set together")
        if ".." in self.s3_prefix.split("/"):
            raise ValueError("s3_prefix must not contain '..'")
        return self

    @field_validator("s3_endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("sip_host", "http_host", "public_address")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper

    @model_validator(mode="after")
    def _ranges(self) -> Settings:
        if self.rtp_port_max - self.rtp_port_min < 2:
            raise ValueError("rtp_port_max must exceed rtp_port_min by at least 2")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'callvault.db'}"

    @property
    def media_address(self) -> str:
        return self.public_address or self.sip_host

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from file, environment and explicit overrides (in that order)."""
    values: dict[str, Any] = {}
    source: dict[str, str] = {}
    path = config_file or (Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        for key, value in raw.items():
            values[key] = value
            source[key] = f"{path}"
    known = set(Settings.model_fields)
    for name, value in os.environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or name in ENGINE_KNOBS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in known:
            raise SettingsError(f"unknown setting {name} (known: {', '.join(sorted(known))})")
        values[key] = value
        source[key] = name
    values.update(overrides)
    for key in overrides:
        source[key] = "command line"
    unknown = set(values) - known
    if unknown:
        key = sorted(unknown)[0]
        raise SettingsError(f"unknown setting '{key}' in {source.get(key, '?')}")
    try:
        # init kwargs only: the environment was already read above, with names checked.
        return Settings.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "settings"
        origin = source.get(str(first["loc"][0]) if first["loc"] else key, "default")
        raise SettingsError(f"invalid setting '{key}' (from {origin}): {first['msg']}") from exc
