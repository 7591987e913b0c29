"""The B2BUA's prompt library: the tenant's upload, else the shipped one, else English; cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from callvault.announcements.library import PromptLibrary, shipped_wav, wav_pcm
from callvault.announcements.upload import convert_upload
from callvault.storage.blobs import LocalBlobStore
from tests.announcements.audio import tone, wav_file


class CountingBlobs(LocalBlobStore):
    """A real local store that counts its reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def read(self, key: str, start: int = 0, end: int | None = None) -> bytes:
        self.reads.append(key)
        return super().read(key, start, end)


@pytest.fixture
def blobs(tmp_path: Path) -> CountingBlobs:
    return CountingBlobs(tmp_path / "blobs")


def _upload(blobs: CountingBlobs, key: str, hz: float = 900, seconds: float = 1.0) -> bytes:
    converted = convert_upload(wav_file(tone(hz, seconds, 16000), 16000), "own.wav")
    blobs.put(key, converted.wav)
    return wav_pcm(converted.wav)


def test_shipped_prompt_in_the_tenants_language(blobs: CountingBlobs) -> None:
    library = PromptLibrary(blobs)
    for language in ("nl", "de", "en"):
        for kind in ("start", "stop"):
            pcm = library.prompt(7, kind, language, {})
            assert pcm == wav_pcm(shipped_wav(language, kind))
    assert library.prompt(7, "start", "nl", {}) != library.prompt(7, "start", "de", {})
    assert blobs.reads == []


def test_another_language_falls_back_to_english(blobs: CountingBlobs) -> None:
    library = PromptLibrary(blobs)
    assert library.prompt(7, "stop", "fr", {}) == wav_pcm(shipped_wav("en", "stop"))
    assert library.prompt(7, "stop", "", {}) == wav_pcm(shipped_wav("en", "stop"))


def test_the_tenants_upload_plays_for_its_kind_only(blobs: CountingBlobs) -> None:
    own = _upload(blobs, "announcements/7/start-abc.wav")
    library = PromptLibrary(blobs)
    custom = {"start": "announcements/7/start-abc.wav"}
    assert library.prompt(7, "start", "de", custom) == own
    assert library.prompt(7, "stop", "de", custom) == wav_pcm(shipped_wav("de", "stop"))


def test_an_upload_is_read_once_then_from_memory(blobs: CountingBlobs) -> None:
    own = _upload(blobs, "announcements/7/start-abc.wav")
    library = PromptLibrary(blobs)
    custom = {"start": "announcements/7/start-abc.wav"}
    for _ in range(5):
        assert library.prompt(7, "start", "nl", custom) == own
    assert blobs.reads == ["announcements/7/start-abc.wav"]
    blobs.delete("announcements/7/start-abc.wav")  # gone from disk, still cached
    assert library.prompt(7, "start", "nl", custom) == own


def test_a_missing_or_broken_upload_falls_back_to_the_shipped_prompt(
    blobs: CountingBlobs,
) -> None:
    library = PromptLibrary(blobs)
    shipped = wav_pcm(shipped_wav("nl", "start"))
    assert library.prompt(7, "start", "nl", {"start": "announcements/7/start-gone.wav"}) == shipped
    blobs.put("announcements/7/start-bad.wav", b"not a wav at all")
    assert library.prompt(7, "start", "nl", {"start": "announcements/7/start-bad.wav"}) == shipped
    blobs.put("announcements/7/start-16k.wav", wav_file(tone(900, 1.0, 16000), 16000))
    assert library.prompt(7, "start", "nl", {"start": "announcements/7/start-16k.wav"}) == shipped
    assert library.cached_keys() == []  # failures are not remembered as prompts


def test_another_tenants_blob_never_plays(blobs: CountingBlobs) -> None:
    _upload(blobs, "announcements/8/start-abc.wav")
    library = PromptLibrary(blobs)
    pcm = library.prompt(7, "start", "en", {"start": "announcements/8/start-abc.wav"})
    assert pcm == wav_pcm(shipped_wav("en", "start"))
    assert blobs.reads == []


def test_the_cache_is_bounded_least_recently_used_out(blobs: CountingBlobs) -> None:
    keys = [f"announcements/7/start-{n}.wav" for n in range(4)]
    for n, key in enumerate(keys):
        _upload(blobs, key, hz=500 + 100 * n)  # 1 s: 16000 bytes of PCM each
    library = PromptLibrary(blobs, cache_bytes=3 * 16000)
    for key in keys[:3]:
        library.prompt(7, "start", "nl", {"start": key})
    library.prompt(7, "start", "nl", {"start": keys[0]})  # the first is used again
    library.prompt(7, "start", "nl", {"start": keys[3]})  # the second goes
    assert library.cached_keys() == [keys[2], keys[0], keys[3]]
    blobs.reads.clear()
    library.prompt(7, "start", "nl", {"start": keys[1]})
    assert blobs.reads == [keys[1]]


def test_a_prompt_larger_than_the_cache_still_plays(blobs: CountingBlobs) -> None:
    own = _upload(blobs, "announcements/7/stop-big.wav", seconds=2.0)
    library = PromptLibrary(blobs, cache_bytes=1000)
    assert library.prompt(7, "stop", "nl", {"stop": "announcements/7/stop-big.wav"}) == own
    assert library.cached_keys() == []
