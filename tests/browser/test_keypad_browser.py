"""The single recording key on a keypad, in a real browser (issue 15 part 1).

The German manual: "Legen Sie fest, mit welcher DTMF-Taste die Aufzeichnung
gestartet und gestoppt werden soll (mit einem Klick auf die Taste öffnet sich
die Auswahl)". Against a running callvault server on loopback, in Debian's
headless Chromium through Playwright: the admin opens Settings › Recording in
German, clicks the key, picks 5 on the keypad and sees it saved (the tenant's
code, the audit log, the page after a reload); the text field still takes
``*`` + digit, and the keypad follows it.

Without Chromium (or Playwright) the test is skipped, except in CI
(``CI=true``), where that is a failure (tests/peers.py).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callvault.db.models import AuditEvent, Tenant, User
from callvault.portal.passwords import hash_password
from tests.browser.test_portal_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    csp_violations,
    log_in,
)
from tests.e2e.harness import Recorder, running_recorder
from tests.peers import require, require_module

PASSWORD = "browser test password 3"


def _prepare(rec: Recorder) -> None:
    """The admin gets a login; the tenant speaks German (the manual's language)."""
    with rec.app.sessions() as session:
        admin = session.scalars(
            select(User).where(User.tenant_id == rec.tenant_id, User.role == "admin")
        ).one()
        admin.login, admin.password_hash = "admin", hash_password(PASSWORD)
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        tenant.language = "de"
        session.commit()


def _saved(rec: Recorder) -> tuple[str, list[dict[str, Any]]]:
    """The tenant's short code and the audited changes of it."""
    with rec.app.sessions() as session:
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "settings.recording", AuditEvent.tenant_id == tenant.id)
            .order_by(AuditEvent.id)
        ).all()
        return tenant.short_code, [dict(e.details) for e in events]


async def test_admin_picks_the_single_key_on_the_keypad(tmp_path: Path) -> None:
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium at {CHROMIUM} (Debian package chromium), to test the portal in a real browser",
    )
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_recorder(tmp_path) as rec:  # the notice is accepted already
        await asyncio.to_thread(_prepare, rec)
        base = f"http://localhost:{rec.app.http_port}"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(
                    base_url=base, viewport={"width": 1280, "height": 900}, locale="de-DE"
                )
                page: Any = await context.new_page()
                blocked = csp_violations(page)  # the keypad's script must live with the CSP
                await log_in(page, base, "admin", PASSWORD, "/settings/recording")

                # *1 today: no single key chosen, the keypad closed, the page says what
                # a single key does
                toggle = page.locator("#keypad-toggle")
                keypad = page.locator("#keypad")
                await expect(page.locator("#short_code")).to_have_value("*1")
                await expect(toggle).to_have_text("wählen")
                await expect(keypad).to_be_hidden()
                await expect(page.locator("#single-key-hint")).to_contain_text(
                    "jeder Druck des Benutzers auf diese Taste"
                )

                # a click on the key opens the keypad: 1-9, *, 0, #
                await toggle.click()
                await expect(keypad).to_be_visible()
                await expect(toggle).to_have_attribute("aria-expanded", "true")
                keys = await keypad.locator("button[data-key]").all_inner_texts()
                assert keys == list("123456789*0#")
                await page.screenshot(path=str(ARTIFACTS / "settings-keypad.png"), full_page=True)

                # pick 5: saved, shown, the keypad closes
                async with page.expect_response(lambda r: r.request.method == "PATCH") as saved:
                    await keypad.locator('button[data-key="5"]').click()
                assert (await saved.value).status == 200
                await expect(keypad).to_be_hidden()
                await expect(toggle).to_have_text("5")
                await expect(page.locator("#short_code")).to_have_value("5")
                code, events = await asyncio.to_thread(_saved, rec)
                assert code == "5"
                assert events[-1]["short_code"] == "5" and events[-1]["old"]["short_code"] == "*1"

                # after a reload the page shows the saved key, pressed on the keypad
                await page.reload()
                await expect(page.locator("#keypad-toggle")).to_have_text("5")
                await page.click("#keypad-toggle")
                await expect(page.locator('#keypad button[data-key="5"]')).to_have_attribute(
                    "aria-pressed", "true"
                )
                await expect(page.locator("#keypad button[aria-pressed=true]")).to_have_count(1)
                # Escape closes it again
                await page.keyboard.press("Escape")
                await expect(page.locator("#keypad")).to_be_hidden()

                # the text field stays for * + digit, and the keypad follows it
                async with page.expect_response(lambda r: r.request.method == "PATCH") as typed:
                    await page.fill("#short_code", "*3")
                    await page.press("#short_code", "Tab")
                assert (await typed.value).status == 200
                await expect(page.locator("#keypad-toggle")).to_have_text("wählen")
                assert (await asyncio.to_thread(_saved, rec))[0] == "*3"
                # and # from the keypad
                await page.click("#keypad-toggle")
                async with page.expect_response(lambda r: r.request.method == "PATCH") as hashed:
                    await page.click('#keypad button[data-key="#"]')
                assert (await hashed.value).status == 200
                await expect(page.locator("#short_code")).to_have_value("#")
                assert (await asyncio.to_thread(_saved, rec))[0] == "#"
                assert blocked == [], blocked
            finally:
                await browser.close()
