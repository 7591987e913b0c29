"""Bulk download in a real browser (Chromium through Playwright), issue 8 section 3.

Against a running callvault (its own job runner, a real SMTP server on
loopback): the admin sets retention to 180 days and turns bulk download on in
Settings › Recording, presses Bulk download in Reports, picks last month; the
export is made in the background, the mail with the link arrives, the admin
follows the link (logged in), downloads the ZIP, and every MP3 in it matches
the manifest's SHA-256; one decodes to the tone it was made of.

The recordings are MP3s made by the real encoder from known tones. Without
Chromium (or Playwright) the test is skipped, except in CI (``CI=true``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callvault.db.models import Call, CallParty, Recording, Tenant, User
from callvault.media.analysis import dominant_frequency
from callvault.media.tones import sine
from callvault.portal.passwords import hash_password
from callvault.recording.mp3 import decode_mp3, encode_mp3
from tests.browser.test_portal_browser import CHROMIUM, CHROMIUM_ARGS, csp_violations, log_in
from tests.e2e.harness import Recorder, running_recorder
from tests.exports.conftest import MailServer
from tests.peers import require, require_module

PASSWORD = "bulk download password 1"
PUBLIC_URL = "https://portal.example"
TONES = {"alice": (700.0, 350.0), "bob": (1100.0, 450.0)}  # left (the user), right


def last_month(timezone: str) -> tuple[str, datetime]:
    """``YYYY-MM`` of the month before this one in ``timezone``, and a time in it (UTC)."""
    today = datetime.now(ZoneInfo(timezone))
    in_last = today.replace(day=1) - timedelta(days=5)
    return in_last.strftime("%Y-%m"), in_last.replace(hour=10, minute=0).astimezone(UTC)


def _prepare(rec: Recorder) -> str:
    """The admin's login and address; one tone recording each of Alice and Bob last month."""
    with rec.app.sessions() as session:
        tenant = session.get(Tenant, rec.tenant_id)
        assert tenant is not None
        month, started = last_month(tenant.timezone)
        admin = session.scalars(
            select(User).where(User.tenant_id == rec.tenant_id, User.role == "admin")
        ).one()
        admin.login, admin.password_hash = "admin", hash_password(PASSWORD)
        admin.email = "admin@acme.example"
        for n, (name, (left, right)) in enumerate(TONES.items()):
            begun = started + timedelta(minutes=n)
            audio = encode_mp3(sine(left, 2.0), sine(right, 2.0), 8000)
            call = Call(
                tenant_id=rec.tenant_id,
                sip_call_id=f"bulk-{name}",
                direction="outbound",
                from_name=name.title(),
                from_number="+31201234501",
                to_number="+31687654321",
                started_at=begun,
                answered_at=begun,
                ended_at=begun + timedelta(seconds=2),
                duration_ms=2000,
            )
            call.parties = [
                CallParty(
                    tenant_id=rec.tenant_id,
                    participant_id=name,
                    name=name.title(),
                    user_id=rec.users[name],
                    side="user",
                )
            ]
            session.add(call)
            session.flush()
            key = f"{rec.tenant_id}/{call.id}.mp3"
            rec.app.blobs.put(key, audio)
            session.add(
                Recording(
                    tenant_id=rec.tenant_id,
                    call_id=call.id,
                    user_id=rec.users[name],
                    blob_key=key,
                    sha256=hashlib.sha256(audio).hexdigest(),
                    size_bytes=len(audio),
                    duration_ms=2000,
                    channels=2,
                    sample_rate=8000,
                    started_at=begun,
                )
            )
        session.commit()
        return month


async def _mail(server: MailServer, timeout: float = 60.0) -> str:
    """The first message's body, once the server has it (the export runs in the app)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not server.mailbox.messages:
        assert asyncio.get_running_loop().time() < deadline, "no mail arrived"
        await asyncio.sleep(0.1)
    [message] = server.mailbox.messages
    assert message["To"] == "admin@acme.example"
    return str(message.get_payload(decode=True).decode())  # type: ignore[union-attr]


async def test_admin_turns_on_bulk_download_and_gets_last_month_as_zip_by_mail(
    tmp_path: Path,
) -> None:
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium at {CHROMIUM} (Debian package chromium), to test the portal in a real browser",
    )
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    server = MailServer()
    server.start()
    try:
        async with running_recorder(
            tmp_path, smtp_host="127.0.0.1", smtp_port=server.port, public_url=PUBLIC_URL
        ) as rec:
            month = await asyncio.to_thread(_prepare, rec)
            base = f"http://localhost:{rec.app.http_port}"
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    context = await browser.new_context(base_url=base, accept_downloads=True)
                    page = await context.new_page()
                    blocked = csp_violations(page)
                    await log_in(page, base, "admin", PASSWORD, "/settings/recording")

                    # no button while bulk download is off
                    await page.goto("/reports/calls")
                    await expect(page.locator("#bulk-download")).to_have_count(0)

                    # retention 180 days first, then bulk download is offered and turned on
                    await page.goto("/settings/recording")
                    async with page.expect_response(lambda r: r.request.method == "PATCH") as slid:
                        await page.eval_on_selector(
                            "#retention_days",
                            "el => { el.value = 180; el.dispatchEvent(new Event('input'));"
                            " el.dispatchEvent(new Event('change')); }",
                        )
                    assert (await slid.value).status == 200
                    await expect(page.locator("#bulk-field")).to_be_visible()
                    async with page.expect_response(lambda r: r.request.method == "PATCH") as on:
                        await page.check("#bulk_download")
                    assert (await on.value).status == 200

                    # Reports › Calls: the button, the month, the request
                    await page.goto("/reports/calls")
                    await page.click("#bulk-download-open")
                    await page.fill("#bulk-month", month)
                    await page.click("#bulk-start")
                    await page.wait_for_url(re.compile(r".*/exports/[0-9a-f]{32}$"))
                    export_path = page.url[len(base) :]

                    # the job runs in the server; the page follows it until the mail went out
                    body = await _mail(server)
                    link = re.search(re.escape(PUBLIC_URL) + r"(/exports/[0-9a-f]{32})", body)
                    assert link is not None and link.group(1) == export_path, body

                    # the mail's link, in the browser where the admin is logged in
                    await page.goto(link.group(1))
                    await expect(page.locator("#export")).to_have_attribute("data-state", "ready")
                    await expect(page.locator("#export-mail")).to_contain_text("admin@acme.example")
                    async with page.expect_download() as download_info:
                        await page.click('[data-download="1"]')
                    saved = tmp_path / "part1.zip"
                    await (await download_info.value).save_as(saved)
                    assert blocked == []
                finally:
                    await browser.close()
    finally:
        server.stop()

    with zipfile.ZipFile(saved) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["month"] == month and manifest["recordings"] == 2
        by_user = {entry["user"]: entry for entry in manifest["files"]}
        assert set(by_user) == {"Alice", "Bob"}
        for entry in manifest["files"]:
            assert hashlib.sha256(zf.read(entry["file"])).hexdigest() == entry["sha256"]
        pcm, rate = decode_mp3(zf.read(by_user["Bob"]["file"]))
    left, right = TONES["bob"]
    assert abs(dominant_frequency(pcm[0], rate) - left) < 10
    assert abs(dominant_frequency(pcm[1], rate) - right) < 10
