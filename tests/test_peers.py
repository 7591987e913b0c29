"""The peer rule (tests/peers.py): a missing peer skips locally and fails when CI=true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import peers

ABSENT = "callvault-no-such-program"

INNER = f'''
import pytest
from tests.peers import program, require

@pytest.mark.peer("{ABSENT}", why="a peer nobody has")
def test_marked():
    raise AssertionError("must not run without its peer")

def test_required():
    program("{ABSENT}", "a peer nobody has")
    raise AssertionError("must not run without its peer")

@pytest.mark.peer("sh", why="a peer everybody has")
def test_present():
    pass

@pytest.mark.peer
def test_bare_label():
    pass
'''

CONFTEST = """
from tests.peers import check_marker

def pytest_runtest_setup(item):
    check_marker(item)
"""


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str | None) -> Path:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(CONFTEST)
    return pytester.makepyfile(test_inner=INNER)


def test_missing_peer_skips_locally(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run(pytester, monkeypatch, None)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines([f"*missing peer: *{ABSENT}*"])


@pytest.mark.parametrize("ci", ["true", "TRUE"])
def test_missing_peer_fails_in_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    _run(pytester, monkeypatch, ci)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    # The marker's check runs in setup (an error), the call's in the test (a failure).
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines([f"*missing peer: *{ABSENT}*CI=true requires it*"])


def test_conditions_files_and_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CI", "false")
    peers.require(True, "met")
    peers.require(tmp_path, "a folder that exists")
    assert peers.require_module("json", "stdlib").__name__ == "json"
    with pytest.raises(pytest.skip.Exception):
        peers.require(tmp_path / "absent.pcap", "a file that does not exist")
    with pytest.raises(pytest.skip.Exception):
        peers.require_module("callvault_no_such_module", "absent")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        peers.require(False, "a condition not met")
    with pytest.raises(pytest.fail.Exception):
        peers.require_module("callvault_no_such_module", "absent")
