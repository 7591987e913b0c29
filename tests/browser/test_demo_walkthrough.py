"""The newcomer's walkthrough, for real: ``callvault demo``, then each printed login in Chromium.

The demo runs as a newcomer starts it (in the background, on a fresh data
directory, until Ctrl-C). Its output is the only source of the portal's
address, the logins and the share link. Each role sees what it should: the
admin all of the tenant's calls, the recording settings and the audit log;
the listener their own and their team's calls (Anna's, not Bram's) and no
settings; the user Bram his own calls only. The share link plays for someone
without a login; the labels and the comment are on Anna's recording.
Screenshots go to ``test-artifacts/walkthrough-*.png``.

Without Chromium (or Playwright) the test is skipped, except in CI
(``CI=true``), where that is a failure (tests/peers.py).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callvault.db.engine import make_engine, make_sessionmaker
from callvault.db.models import Recording, User
from tests.browser.test_portal_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.peers import require, require_module

PORTAL = re.compile(r"^portal: (http://\S+)/login")
ACCOUNT = re.compile(r"^  (admin|listener|user)\s+(\S+)\s+(\S+)  sees ")
SHARE = re.compile(r"share link of Anna's call .*: (http://\S+/s/\S+)$")
READY = "Ctrl-C stops it"


def _start_demo(data_dir: Path) -> tuple[subprocess.Popen[str], list[str]]:
    """The demo in the background; its output up to 'Ctrl-C stops it'."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLVAULT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "callvault", "demo", "--data-dir", str(data_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + 120
    while not any(READY in line for line in seen):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            raise AssertionError(f"the demo did not get ready: {seen}") from None
        if line is None:
            raise AssertionError(f"the demo exited: {seen}")
        seen.append(line)
    return process, seen


def _recordings(data_dir: Path) -> dict[str, str]:
    """Whose recording is which: {user's first name: recording id}."""
    engine = make_engine(f"sqlite:///{data_dir.resolve() / 'callvault.db'}")
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(User.name, Recording.id).join(User, User.id == Recording.user_id)
            )
            return {name.split()[0]: rid for name, rid in rows}
    finally:
        engine.dispose()


async def _log_in(browser: Any, base: str, login: str, password: str) -> Any:
    page = await (await browser.new_context(base_url=base)).new_page()
    await page.goto("/login")
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("#login-form button[type=submit]")
    # a user starts on the home screen (the recordings), the others on Reports › Calls
    await page.wait_for_url(re.compile(r".*/(reports/calls|home)$"))
    return page


async def test_newcomer_logs_in_with_each_printed_login(tmp_path: Path) -> None:
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium at {CHROMIUM} (Debian package chromium), to test the portal in a real browser",
    )
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    ARTIFACTS.mkdir(exist_ok=True)
    data_dir = tmp_path / "demo"
    process, output = _start_demo(data_dir)
    try:
        text = "\n".join(output)
        [base] = [m.group(1) for line in output if (m := PORTAL.match(line))]
        accounts = {
            m.group(1): (m.group(2), m.group(3)) for line in output if (m := ACCOUNT.match(line))
        }
        assert set(accounts) == {"admin", "listener", "user"}, text
        [share_url] = [m.group(1) for line in output if (m := SHARE.search(line))]
        recordings = _recordings(data_dir)
        anna, bram = recordings["Anna"], recordings["Bram"]

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                # the admin: every call of the tenant, the settings and the audit log
                admin = await _log_in(browser, base, *accounts["admin"])
                for rid in (anna, bram):
                    await expect(admin.locator(f'tr[data-recording="{rid}"]')).to_have_count(1)
                await admin.screenshot(path=str(ARTIFACTS / "walkthrough-admin-calls.png"))
                response = await admin.goto("/settings/recording")
                assert response is not None and response.status == 200
                await expect(admin.locator("#recorded-users")).to_contain_text("Anna de Vries")
                await admin.screenshot(
                    path=str(ARTIFACTS / "walkthrough-admin-settings.png"), full_page=True
                )
                await admin.goto(f"/recordings/{anna}")
                await expect(admin.locator("#labels")).to_contain_text("quote request")
                await expect(admin.locator("#comments")).to_contain_text("calls back Monday")
                await admin.screenshot(
                    path=str(ARTIFACTS / "walkthrough-recording.png"), full_page=True
                )
                await admin.goto("/audit")
                await expect(admin.locator("#audit")).to_contain_text("share.create")

                # the listener: own and team (Anna), not Bram; no settings
                listener = await _log_in(browser, base, *accounts["listener"])
                await expect(listener.locator(f'tr[data-recording="{anna}"]')).to_have_count(1)
                await expect(listener.locator(f'tr[data-recording="{bram}"]')).to_have_count(0)
                await listener.screenshot(path=str(ARTIFACTS / "walkthrough-listener-calls.png"))
                response = await listener.goto("/settings/recording")
                assert response is not None and response.status in (403, 404)
                response = await listener.goto(f"/recordings/{bram}")
                assert response is not None and response.status == 404

                # the user: Bram's own call only
                user = await _log_in(browser, base, *accounts["user"])
                await user.goto("/reports/calls")
                await expect(user.locator(f'tr[data-recording="{bram}"]')).to_have_count(1)
                await expect(user.locator(f'tr[data-recording="{anna}"]')).to_have_count(0)
                await user.screenshot(path=str(ARTIFACTS / "walkthrough-user-calls.png"))

                # the share link: no login, Anna's call plays
                stranger = await (await browser.new_context()).new_page()
                await stranger.goto(share_url)
                await expect(stranger.locator("#shared-info")).to_contain_text("Anna")
            finally:
                await browser.close()
    finally:
        process.send_signal(signal.SIGINT)  # the newcomer's Ctrl-C
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert code == 0
