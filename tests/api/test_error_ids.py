"""Error ids live in one place (``callvault.errors.ErrorId``), each once, with its status.

Before this, 170 ``error_id="..."`` literals sat in 45 modules and the same CSRF
failure was ``csrf`` on the portal's logout and language forms but
``csrf-failed`` everywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

import callvault
from callvault.errors import ApiError, ErrorId, Forbidden, InvalidInput, NotFound
from tests.api.conftest import PASSWORD, World, give_login

SRC = Path(callvault.__file__).parent
# an id written as a string where an error is raised or answered
_LITERAL_ID = re.compile(r"""error_id\s*=\s*["']|["']id["']\s*:\s*["'][a-z]+-""")


def test_no_error_id_literal_outside_errors_py() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path != SRC / "errors.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _LITERAL_ID.search(line)
    ]
    assert offenders == []


def test_every_id_is_listed_once_with_a_status_and_a_meaning() -> None:
    values = [member.value for member in ErrorId]
    assert len(values) == len(set(values))
    source = (SRC / "errors.py").read_text(encoding="utf-8")
    for member in ErrorId:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", member.value), member
        assert source.count(f'"{member.value}"') == 1, member
        assert 400 <= member.status <= 599 and member.meaning.strip(), member
    assert "csrf" not in values and ErrorId.CSRF_FAILED.status == 403


def test_the_status_comes_with_the_id() -> None:
    assert NotFound("x").status == 404 and NotFound("x").error_id == ErrorId.NOT_FOUND
    assert InvalidInput("x").status == 422 and Forbidden("x").status == 403
    assert ApiError("x").status == 400
    assert ApiError("x", error_id=ErrorId.EXPORT_EXPIRED).status == 410
    assert NotFound("x", error_id=ErrorId.TENANT_NOT_FOUND).status == 404


def test_forms_without_their_csrf_token_are_still_refused(
    world: World, browser: TestClient
) -> None:
    """The page forms now raise ``csrf-failed``; a page shows it as its 403 error page."""
    login = give_login(world, "a_user")
    r = browser.post("/api/v1/session", json={"login": login, "password": PASSWORD})
    assert r.status_code == 200, r.text
    for path, form in (("/language", {"language": "de"}), ("/logout", {})):
        refused = browser.post(path, data=form, follow_redirects=False)
        assert refused.status_code == 403, (path, refused.text)
        assert 'data-error="403"' in refused.text, path
