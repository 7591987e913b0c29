"""LiveCenter in a real browser (SPEC 7): the page follows calls live over its event
stream, with the portal's strict CSP: a SIPREC call appears as it comes up, shows
its recording state and ticking duration, and disappears when it ends, all
without reloading the page. Skipped without Chromium, a failure in CI."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from sqlalchemy import select

from callvault.admin import enable_feature
from callvault.db.models import Tenant, User
from callvault.demo.client import CallPlan, Participant
from callvault.media.tones import sine
from callvault.portal.passwords import hash_password
from tests.browser.test_portal_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    csp_violations,
    log_in,
)
from tests.e2e.harness import Recorder, running_recorder
from tests.peers import require, require_module


def _prepare(rec: Recorder) -> None:
    hashed = hash_password(PASSWORD)
    with rec.app.sessions() as session:
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        enable_feature(session, tenant, "listening", reference="DECL-TEST")
        for user in session.scalars(select(User).where(User.tenant_id == rec.tenant_id)):
            user.login, user.password_hash = user.name.lower(), hashed
        session.commit()
    rec.app.reload_directory()


async def test_the_livecenter_page_follows_a_call_live(tmp_path: Path) -> None:
    require(shutil.which(CHROMIUM) is not None, f"Chromium at {CHROMIUM} (Debian package chromium)")
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    async with running_recorder(tmp_path, mode="always") as rec:
        await asyncio.to_thread(_prepare, rec)
        base = f"http://localhost:{rec.app.http_port}"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(base_url=base)
                page = await context.new_page()
                blocked = csp_violations(page)
                await log_in(page, base, "admin", PASSWORD, "/livecenter")
                await expect(page.locator("#live-connection")).to_have_attribute(
                    "data-live", "open"
                )
                await expect(page.locator("#live-empty")).to_be_visible()
                await expect(page.locator("nav.menu a[href='/livecenter']")).to_have_count(1)

                seconds = 4.0
                plan = CallPlan(
                    caller=Participant("sip:alice@acme.example", "Alice", sine(440.0, seconds)),
                    callee=Participant(
                        "sip:+31612345678@pstn.example", "Customer", sine(1000.0, seconds)
                    ),
                    duration_s=seconds,
                )
                placing = asyncio.create_task(rec.client.place(plan))
                row = page.locator("#live-calls tbody tr")
                await expect(row).to_have_count(1, timeout=5000)
                await expect(row).to_have_attribute("data-state", "recording", timeout=5000)
                await expect(row.locator(".parties")).to_contain_text("Alice")
                await expect(row.locator("[data-record]")).to_have_count(1)
                await expect(row.locator("[data-listen]")).to_have_count(1)
                await expect(row.locator(".duration")).not_to_have_text("0:00", timeout=3000)
                assert (await placing).status == 200
                await expect(row).to_have_count(0, timeout=5000)  # gone without a reload
                await expect(page.locator("#live-empty")).to_be_visible()
                assert blocked == []
            finally:
                await browser.close()
