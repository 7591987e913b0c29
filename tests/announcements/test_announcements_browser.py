"""Settings › Recording › Announcements in a real browser (issue 10, SPEC 3).

Against a running callvault server on loopback, in Debian's headless Chromium
through Playwright, in German (the manual's words): the admin turns on "tell
the caller again after a transfer", uploads a WAV as the start prompt (the
page's own script PUTs the file: no inline script, no multipart), sees it
listed and can fetch it to listen, sees a refused file's message, and goes
back to the shipped prompt. Nothing is blocked by the CSP.

Without Chromium (or Playwright) the test is skipped, except in CI
(``CI=true``), where that is a failure (tests/peers.py).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callvault.db.models import AnnouncementPrompt, Tenant, User
from callvault.portal.passwords import hash_password
from tests.announcements.audio import tone, wav_file
from tests.browser.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, csp_violations, log_in
from tests.e2e.harness import Recorder, running_recorder
from tests.peers import require, require_module

PASSWORD = "browser test password 10"


def _prepare(rec: Recorder) -> None:
    with rec.app.sessions() as session:
        admin = session.scalars(
            select(User).where(User.tenant_id == rec.tenant_id, User.role == "admin")
        ).one()
        admin.login, admin.password_hash = "admin", hash_password(PASSWORD)
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        tenant.language = "de"
        session.commit()


def _state(rec: Recorder) -> tuple[bool, list[str]]:
    with rec.app.sessions() as session:
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        kinds = session.scalars(
            select(AnnouncementPrompt.kind).where(AnnouncementPrompt.tenant_id == tenant.id)
        ).all()
        return tenant.announce_after_transfer, list(kinds)


async def test_admin_uploads_listens_and_resets_a_prompt(tmp_path: Path) -> None:
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium at {CHROMIUM} (Debian package chromium), to test the portal in a real browser",
    )
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    files = tmp_path / "files"
    files.mkdir()
    welcome = files / "willkommen.wav"
    welcome.write_bytes(wav_file(tone(1000, 1.5, 44100), 44100, channels=2))
    text = files / "notes.wav"
    text.write_bytes(b"this is no audio at all")
    async with running_recorder(tmp_path) as rec:  # the notice is accepted already
        await asyncio.to_thread(_prepare, rec)
        base = f"http://localhost:{rec.app.http_port}"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(base_url=base, locale="de-DE")
                page: Any = await context.new_page()
                blocked = csp_violations(page)
                await log_in(page, base, "admin", PASSWORD, "/settings/recording")
                card = page.locator("#announcements")
                await expect(card).to_contain_text(
                    "Den Anrufer bei der Weiterleitung erneut über die Aufzeichnung informieren"
                )
                await expect(page.locator("#announce_start")).to_be_checked()
                await expect(page.locator("#announce_after_transfer")).not_to_be_checked()

                # an option: one PATCH, saved
                async with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
                    await page.check("#announce_after_transfer")
                assert (await saved.value).status == 200
                assert (await asyncio.to_thread(_state, rec))[0] is True

                # a refused file: the API's message next to the prompts, nothing stored
                async with page.expect_response(lambda r: r.request.method == "PUT") as refused:
                    await page.set_input_files('input[data-upload="start"]', str(text))
                assert (await refused.value).status == 422
                await expect(page.locator("#prompt-msg")).to_contain_text("WAV or MP3")
                assert (await asyncio.to_thread(_state, rec))[1] == []

                # the upload: PUT by the page's script, then the page shows it
                async with page.expect_response(lambda r: r.request.method == "PUT") as put:
                    await page.set_input_files('input[data-upload="start"]', str(welcome))
                assert (await put.value).status == 200
                row = page.locator('tr[data-kind="start"]')
                await expect(row).to_contain_text("Eigene Datei: willkommen.wav")
                await expect(row).to_contain_text("1.5 s")
                assert (await asyncio.to_thread(_state, rec))[1] == ["start"]
                # listening back: the player's source answers the converted WAV
                src = await row.locator("audio").get_attribute("src")
                answer = await page.evaluate(
                    "src => fetch(src).then(r => r.arrayBuffer().then("
                    "b => [r.status, r.headers.get('content-type'), b.byteLength]))",
                    src,
                )
                assert answer[0] == 200 and answer[1] == "audio/wav"
                assert answer[2] == 44 + 2 * 8000 * 3 // 2  # 1.5 s at 8 kHz mono 16-bit

                # back to the shipped prompt
                async with page.expect_response(lambda r: r.request.method == "DELETE") as gone:
                    await row.locator("button[data-reset]").click()
                assert (await gone.value).status == 204
                await expect(page.locator('tr[data-kind="start"]')).to_contain_text(
                    "Standardansage (de)"
                )
                assert (await asyncio.to_thread(_state, rec))[1] == []
                assert blocked == []
            finally:
                await browser.close()
