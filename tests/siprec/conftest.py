"""Loading the real SIPREC bodies (tests/fixtures/siprec/reference) and our own fixtures."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURE_DIR = Path(__file__).parents[1] / "fixtures/siprec"
REFERENCE_DIR = FIXTURE_DIR / "reference"  # see its README.md for the origin
MARKER = "---- verbatim content below this line ----"

Body = tuple[str, bytes]


def load_body(path: Path, *, crlf: bool = True) -> Body:
    """(Content-Type header, body) of a kept body file.

    The files are stored with LF line ends; on the wire they are CRLF, so by
    default the line ends are converted. The Content-Type comes from a
    ``# CONTENT-TYPE:`` header line, else it is multipart/mixed with the
    boundary of the first delimiter line.
    """
    text = path.read_text("utf-8")
    header, _, body = text.partition(MARKER + "\n")
    declared = re.search(r"^# CONTENT-TYPE: (.+)$", header, re.MULTILINE)
    if declared:
        content_type = declared.group(1).strip()
    else:
        first = re.search(r"^--(\S+)\s*$", body, re.MULTILINE)
        assert first, path
        content_type = f'multipart/mixed;boundary="{first.group(1)}"'
    raw = body.encode("utf-8")
    if crlf:
        raw = raw.replace(b"\n", b"\r\n")
    return content_type, raw


@pytest.fixture
def reference_dir() -> Path:
    return REFERENCE_DIR


@pytest.fixture
def reference() -> Callable[..., Body]:
    def load(prefix: str, *, crlf: bool = True) -> Body:
        (path,) = REFERENCE_DIR.glob(f"{prefix}_*.txt")
        return load_body(path, crlf=crlf)

    return load


@pytest.fixture
def fixture_body() -> Callable[..., Body]:
    def load(name: str, *, crlf: bool = True) -> Body:
        return load_body(FIXTURE_DIR / name, crlf=crlf)

    return load
