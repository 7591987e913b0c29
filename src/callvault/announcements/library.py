"""The prompts the B2BUA plays, ready as PCM (SPEC 3, announcements).

``PromptLibrary.prompt`` answers the audio for a tenant's start or stop
prompt: the tenant's own upload when it has one, else the prompt shipped with
callvault in the tenant's language, else the English one. It is called on the
event loop at the moment recording starts, so it must not wait: the shipped
prompts (``prompts/<language>/<kind>.wav``, made by ``scripts/make-prompts.sh``)
are read once when the library is made, and an uploaded prompt is read from the
blob store once and then kept in memory (least recently used first out, bounded
in bytes). An upload gets a new blob key whenever it changes (the key holds its
SHA-256), so a cached prompt is never stale.

Every prompt is 8 kHz mono s16le PCM: what ``upload.convert_upload`` stores.
"""

from __future__ import annotations

import io
import logging
import wave
from collections import OrderedDict
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Final, Literal

from callvault.announcements.upload import SAMPLE_RATE
from callvault.storage.blobs import BlobNotFound, BlobStore

log = logging.getLogger(__name__)

Kind = Literal["start", "stop"]
KINDS: Final[tuple[Kind, ...]] = ("start", "stop")
LANGUAGES: Final[tuple[str, ...]] = ("nl", "de", "en")
FALLBACK_LANGUAGE: Final = "en"
CACHE_BYTES = 16 * 1024 * 1024  # about 17 minutes of uploaded prompts


class NotAPrompt(ValueError):
    """A WAV that is not 8 kHz mono 16-bit PCM."""


def wav_pcm(wav: bytes) -> bytes:
    """The PCM of an 8 kHz mono 16-bit WAV (``NotAPrompt`` for anything else)."""
    try:
        with wave.open(io.BytesIO(wav), "rb") as reader:
            shape = (reader.getframerate(), reader.getnchannels(), reader.getsampwidth())
            if shape != (SAMPLE_RATE, 1, 2):
                raise NotAPrompt(f"a prompt is 8 kHz mono 16-bit, not {shape}")
            return reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise NotAPrompt(str(exc)) from exc


def shipped_language(language: str) -> str:
    """The shipped prompts' language for a tenant's ``language``: its own, else English."""
    return language if language in LANGUAGES else FALLBACK_LANGUAGE


@cache
def shipped_wav(language: str, kind: Kind) -> bytes:
    """The WAV file shipped for ``language`` (English when none) and ``kind``."""
    path = resources.files("callvault.announcements") / "prompts" / shipped_language(language)
    return (path / f"{kind}.wav").read_bytes()


def duration_ms(pcm: bytes) -> int:
    return len(pcm) * 1000 // (2 * SAMPLE_RATE)


def tenant_prefix(tenant_id: int) -> str:
    """Where a tenant's prompts live in the blob store; a key elsewhere is never played."""
    return f"announcements/{tenant_id}/"


class PromptLibrary:
    """Start and stop prompts as 8 kHz mono s16le PCM, from memory after the first use."""

    def __init__(self, blobs: BlobStore, *, cache_bytes: int = CACHE_BYTES) -> None:
        self._blobs = blobs
        self._cache_bytes = cache_bytes
        self._shipped: dict[tuple[str, Kind], bytes] = {
            (language, kind): wav_pcm(shipped_wav(language, kind))
            for language in LANGUAGES
            for kind in KINDS
        }
        self._uploaded: OrderedDict[str, bytes] = OrderedDict()
        self._uploaded_bytes = 0

    def prompt(self, tenant_id: int, kind: Kind, language: str, custom: Mapping[str, str]) -> bytes:
        """The PCM the other party hears for ``kind``.

        ``custom`` maps a kind to the blob key of the tenant's upload
        (``TenantPolicy.prompts``); without one, or when it cannot be read, the
        shipped prompt in ``language`` plays (English for another language).
        """
        key = custom.get(kind)
        if key is not None:
            pcm = self._upload(tenant_id, key)
            if pcm is not None:
                return pcm
        return self._shipped[(shipped_language(language), kind)]

    def _upload(self, tenant_id: int, key: str) -> bytes | None:
        pcm = self._uploaded.get(key)
        if pcm is not None:
            self._uploaded.move_to_end(key)
            return pcm
        if not key.startswith(tenant_prefix(tenant_id)):
            # defence in depth: a tenant's calls never play another tenant's blob
            log.warning("prompt %s is not tenant %d's; the shipped one plays", key, tenant_id)
            return None
        try:
            pcm = wav_pcm(self._blobs.read(key))
        except (BlobNotFound, NotAPrompt, ValueError) as exc:
            log.warning("prompt %s cannot be read (%s); the shipped one plays", key, exc)
            return None
        self._remember(key, pcm)
        return pcm

    def _remember(self, key: str, pcm: bytes) -> None:
        if len(pcm) > self._cache_bytes:
            return
        self._uploaded[key] = pcm
        self._uploaded_bytes += len(pcm)
        while self._uploaded_bytes > self._cache_bytes:
            _, dropped = self._uploaded.popitem(last=False)
            self._uploaded_bytes -= len(dropped)

    def cached_keys(self) -> list[str]:
        """The uploaded prompts held in memory, least recently used first (for tests)."""
        return list(self._uploaded)
