"""The portal in a real browser (Debian's headless Chromium through Playwright).

One flow against a real callvault server (SIP, RTP and HTTP on loopback): the
admin logs in, accepts the legal notice, puts a user on the recording list with
the plus and sets a mode, the short code and the retention slider; a SIPREC
call of that user is recorded and appears in Reports › Calls, where it plays
(time advances, seeking holds) and downloads (SHA-256 as stored); a
stream-only tenant has no download button; a user cannot open a colleague's
recording. Screenshots of the main pages go to ``test-artifacts/``.

Without Chromium (or Playwright) the test is skipped, except in CI
(``CI=true``), where that is a failure (tests/peers.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import delete, select

from callvault.db.models import (
    Call,
    CallParty,
    LegalAcceptance,
    Operator,
    Recording,
    Tenant,
    User,
)
from callvault.demo.client import CallPlan, Participant
from callvault.media.tones import sine
from callvault.portal.passwords import hash_password
from tests.e2e.harness import Recorder, running_recorder
from tests.peers import require, require_module

CHROMIUM = os.environ.get("CALLVAULT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "browser test password 1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def csp_violations(page: Any) -> list[str]:
    """Console reports of the portal's CSP blocking something, collected as they come:
    the portal's own scripts must live with its CSP (self only, no inline)."""
    blocked: list[str] = []
    page.on(
        "console",
        lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return blocked


async def log_in(page: Any, base: str, login: str, password: str, path: str) -> None:
    """Through the login page, which sends the user on to ``path``."""
    await page.goto(f"/login?next={quote(path, safe='')}")
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_url(f"{base}{path}")


def _prepare(rec: Recorder) -> str:
    """Logins for the admin and Alice, the notice not yet accepted, one recording of Bob's."""
    hashed = hash_password(PASSWORD)
    with rec.app.sessions() as session:
        for user in session.scalars(select(User).where(User.tenant_id == rec.tenant_id)):
            user.login, user.password_hash = user.name.lower(), hashed
        for operator in session.scalars(select(Operator)):
            operator.login, operator.password_hash = "op", hashed
        session.execute(delete(LegalAcceptance).where(LegalAcceptance.tenant_id == rec.tenant_id))
        call = Call(
            tenant_id=rec.tenant_id,
            sip_call_id="bob-earlier",
            direction="inbound",
            from_number="+31687654321",
            to_name="Bob",
            started_at=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            duration_ms=1000,
        )
        call.parties = [
            CallParty(
                tenant_id=rec.tenant_id,
                participant_id="b",
                user_id=rec.users["bob"],
                side="user",
            )
        ]
        session.add(call)
        session.flush()
        recording = Recording(
            tenant_id=rec.tenant_id,
            call_id=call.id,
            user_id=rec.users["bob"],
            blob_key="missing.mp3",
            sha256="0" * 64,
            size_bytes=0,
            duration_ms=1000,
            channels=2,
            sample_rate=8000,
            started_at=call.started_at,
        )
        session.add(recording)
        session.commit()
        bobs = recording.id
    rec.app.reload_directory()
    return bobs


def _tenant(rec: Recorder) -> Tenant:
    with rec.app.sessions() as session:
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        session.expunge(tenant)
        return tenant


async def _eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if check():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def _until(page: Any, expression: str, timeout: float = 10.0) -> None:
    """``page.wait_for_function`` without it: that evaluates strings in the page, which
    the portal's CSP (no 'unsafe-eval') forbids; ``evaluate`` goes through DevTools."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await page.evaluate(expression):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not met in time: {expression}")
        await asyncio.sleep(0.05)


async def test_admin_sets_up_recording_and_plays_a_siprec_call(tmp_path: Path) -> None:
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium at {CHROMIUM} (Debian package chromium), to test the portal in a real browser",
    )
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_recorder(tmp_path) as rec:
        bobs_recording = await asyncio.to_thread(_prepare, rec)
        base = f"http://localhost:{rec.app.http_port}"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(
                    base_url=base, accept_downloads=True, viewport={"width": 1280, "height": 900}
                )
                page = await context.new_page()
                blocked = csp_violations(page)

                # log in; the login page sends us back where we wanted to go
                await page.goto("/settings/recording")
                await expect(page).to_have_url(f"{base}/login?next=%2Fsettings%2Frecording")
                await page.fill("#login", "admin")
                await page.fill("#password", PASSWORD)
                await page.screenshot(path=str(ARTIFACTS / "login.png"))
                await page.click("#login-form button[type=submit]")
                await expect(page).to_have_url(f"{base}/settings/recording")

                # the notice first, nothing else; a short purpose gets the API's message
                await expect(page.locator("#accept-form")).to_be_visible()
                await expect(page.locator("#short_code")).to_have_count(0)
                await page.fill("#purpose", "short")
                await page.click("#accept")
                await expect(page.locator("#accept-form [data-msg]")).to_contain_text("purpose")
                await page.fill("#purpose", "quality control and training of the service desk")
                await page.click("#accept")
                await expect(page.locator("#recorded-users")).to_be_visible()

                # the plus puts Carol on the list in the default mode; then "always"
                carol = rec.users["carol"]
                await page.click(f'button[data-add="{carol}"]')
                mode = page.locator(f'select[data-mode="{carol}"]')
                await expect(mode).to_have_value("on_demand_user")
                async with page.expect_response(lambda r: r.request.method == "PUT") as put:
                    await mode.select_option("always")
                assert (await put.value).status == 200

                # short code: a wrong one shows the API's message, a right one is saved
                async with page.expect_response(lambda r: r.request.method == "PATCH") as bad:
                    await page.fill("#short_code", "55")
                    await page.press("#short_code", "Tab")
                assert (await bad.value).status == 422
                await expect(page.locator("#short_code ~ [data-msg]")).to_contain_text("short")
                async with page.expect_response(lambda r: r.request.method == "PATCH") as good:
                    await page.fill("#short_code", "*5")
                    await page.press("#short_code", "Tab")
                assert (await good.value).status == 200

                # the retention slider; bulk download is offered from 180 days
                await expect(page.locator("#bulk-field")).to_be_hidden()
                async with page.expect_response(lambda r: r.request.method == "PATCH") as slid:
                    await page.eval_on_selector(
                        "#retention_days",
                        # beyond the plan's 180: the slider stops at its bound
                        "el => { el.value = 200; el.dispatchEvent(new Event('input'));"
                        " el.dispatchEvent(new Event('change')); }",
                    )
                assert (await slid.value).status == 200
                await expect(page.locator("#bulk-field")).to_be_visible()
                await expect(page.locator("#retention-value")).to_contain_text("180")
                shot = ARTIFACTS / "settings-recording.png"
                await page.screenshot(path=str(shot), full_page=True)
                tenant = _tenant(rec)
                assert (tenant.short_code, tenant.retention_days) == ("*5", 180)

                # a SIPREC call of Carol's is recorded and listed
                plan = CallPlan(
                    caller=Participant("sip:carol@acme.example", "Carol", sine(440.0, 4.0)),
                    callee=Participant(
                        "sip:+31612345678@pstn.example", "Customer", sine(1000.0, 4.0)
                    ),
                    duration_s=4.0,
                )
                assert (await rec.client.place(plan)).status == 200
                [(_call, recording_id)] = await rec.wait_finished()
                assert recording_id is not None
                meta = await rec.recording(recording_id)

                await page.goto("/reports/calls")
                row = page.locator(f'tr[data-recording="{recording_id}"]')
                await expect(row).to_contain_text("Carol")
                await page.screenshot(path=str(ARTIFACTS / "reports-calls.png"), full_page=True)

                # play: time advances; seeking lands where asked and keeps playing
                await row.locator("button.play").click()
                player = page.locator("#player")
                await _until(page, "document.getElementById('player').currentTime > 0.3")
                await player.evaluate("a => { a.currentTime = 2.0; }")
                await _until(
                    page,
                    "(() => { const a = document.getElementById('player');"
                    " return !a.seeking && a.currentTime >= 2.0; })()",
                )
                held = await player.evaluate("a => a.currentTime")
                assert 2.0 <= held < 3.5
                await _until(
                    page, f"document.getElementById('player').currentTime > {held + 0.2}", 5.0
                )

                # download: the MP3 as stored
                async with page.expect_download() as download_info:
                    await row.locator("a.download").click()
                download = await download_info.value
                saved = tmp_path / "download.mp3"
                await download.save_as(saved)
                assert hashlib.sha256(saved.read_bytes()).hexdigest() == meta["sha256"]

                # the recording's own page: both channels drawn from the decoded MP3
                await page.goto(f"/recordings/{recording_id}")
                await expect(page.locator("#waveform")).to_have_attribute(
                    "data-drawn", "2", timeout=10000
                )
                # a label, a comment and a share link; the link plays for anybody
                await page.fill("#label-text", "Complaint")
                await page.click("#label-form button[type=submit]")
                await expect(page.locator("#labels")).to_contain_text("Complaint")
                await page.fill("#comment-text", "Customer asks for a call back")
                await page.click("#comment-form button[type=submit]")
                await expect(page.locator("#comments")).to_contain_text("call back")
                await page.click("#share-form button[type=submit]")
                await expect(page.locator("#share-url")).to_be_visible()
                share_url = await page.input_value("#share-url-text")
                await page.screenshot(path=str(ARTIFACTS / "recording.png"), full_page=True)
                stranger = await (await browser.new_context()).new_page()
                await stranger.goto(share_url)
                await expect(stranger.locator("#shared-info")).to_contain_text("Carol")
                await stranger.locator("#shared-audio").evaluate("a => a.play()")
                await _until(stranger, "document.getElementById('shared-audio').currentTime > 0.3")
                await stranger.screenshot(path=str(ARTIFACTS / "shared.png"))

                # stream-only: no download button any more
                await page.goto("/settings/recording")
                async with page.expect_response(lambda r: r.request.method == "PATCH") as so:
                    await page.check("#stream_only")
                assert (await so.value).status == 200
                await page.goto("/reports/calls")
                await expect(row.locator("button.play")).to_be_visible()
                await expect(row.locator("a.download")).to_have_count(0)

                await page.goto("/audit")
                await expect(page.locator("#audit")).to_contain_text("recording.play")
                assert blocked == [], blocked
                await page.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=True)

                # Alice may not open Bob's recording: the same 404 as for no recording
                alice = await (await browser.new_context(base_url=base)).new_page()
                await alice.goto("/login")
                await alice.fill("#login", "alice")
                await alice.fill("#password", PASSWORD)
                await alice.click("#login-form button[type=submit]")
                await expect(alice).to_have_url(f"{base}/home")  # a user's start page
                response = await alice.goto(f"/recordings/{bobs_recording}")
                assert response is not None and response.status == 404
                await expect(alice.locator("[data-error='404']")).to_be_visible()
                await alice.screenshot(path=str(ARTIFACTS / "not-found.png"))

                # the operator adds a user to the tenant and gives it a second SIP domain
                op = await (await browser.new_context(base_url=base)).new_page()
                await op.goto("/login")
                await op.fill("#login", "op")
                await op.fill("#password", PASSWORD)
                await op.click("#login-form button[type=submit]")
                await expect(op).to_have_url(f"{base}/operator/tenants")  # the operator's home
                await op.goto(f"/operator/tenants/{rec.tenant_id}")
                form = op.locator("#user-form")
                await form.locator("input[name=name]").fill("Dora")
                await form.locator("input[name=extension]").fill("205")
                await form.locator("input[name=aors]").fill("dora@acme.example")
                await form.locator("button[type=submit]").click()
                await expect(op.locator("#tenant-users")).to_contain_text("Dora")
                await op.fill("#tenant-edit input[name=domains]", "acme.example, acme2.example")
                async with op.expect_response(lambda r: r.request.method == "PATCH") as edited:
                    await op.click("#tenant-edit button[type=submit]")
                assert (await edited.value).status == 200
                await op.screenshot(path=str(ARTIFACTS / "operator-tenant.png"), full_page=True)

                def _operator_saw() -> bool:
                    with rec.app.sessions() as session:
                        tenant = session.get(Tenant, rec.tenant_id)
                        dora = session.scalar(select(User).where(User.name == "Dora"))
                        return (
                            tenant is not None
                            and {d.domain for d in tenant.domains}
                            == {"acme.example", "acme2.example"}
                            and dora is not None
                            and dora.extension == "205"
                        )

                assert await asyncio.to_thread(_operator_saw)
            finally:
                await browser.close()
