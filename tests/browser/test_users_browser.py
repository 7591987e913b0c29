"""Users in a real browser (issue 15 parts 2 and 3, "How it is checked").

Against a running callvault server on loopback, in Debian's headless
Chromium through Playwright: the admin sets a mode in a user's profile and
sees it in Settings › Recording (and a change there back in the profile);
then imports a CSV of 500 users with 3 bad lines: the bad lines are listed
with their line numbers, nothing changes, and the corrected file imports.

Without Chromium (or Playwright) the test is skipped, except in CI
(``CI=true``), where that is a failure (tests/peers.py).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from callvault.db.models import User
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

PASSWORD = "browser test password 2"
HEADER = "name,extension,numbers,aors,email,role,teams,recording_mode\n"
BAD_LINES = {  # line number in the file -> the line
    102: "Stranger,5100,,stranger@elsewhere.example,,user,,always\n",
    303: "Moody,5301,,,,user,,sometimes\n",
    404: "Twin,5000,,,,user,,\n",  # the extension of line 2
}


def _give_admin_login(rec: Recorder) -> None:
    with rec.app.sessions() as session:
        admin = session.scalars(
            select(User).where(User.tenant_id == rec.tenant_id, User.role == "admin")
        ).one()
        admin.login, admin.password_hash = "admin", hash_password(PASSWORD)
        session.commit()


def _count(rec: Recorder) -> int:
    with rec.app.sessions() as session:
        return int(session.scalar(select(func.count()).where(User.tenant_id == rec.tenant_id)) or 0)


def _write_csv(path: Path, *, with_bad_lines: bool) -> None:
    """500 users (extensions 5000-5499) on lines 2-501; three of them bad on request."""
    lines = [HEADER]
    for i in range(500):
        line_number = i + 2
        if with_bad_lines and line_number in BAD_LINES:
            lines.append(BAD_LINES[line_number])
        else:
            lines.append(f"User {i},{5000 + i},,u{i}@acme.example,u{i}@acme.example,user,,always\n")
    path.write_text("".join(lines), encoding="utf-8")


async def test_profile_recording_choice_and_users_csv_import(tmp_path: Path) -> None:
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium at {CHROMIUM} (Debian package chromium), to test the portal in a real browser",
    )
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    ARTIFACTS.mkdir(exist_ok=True)
    async with running_recorder(tmp_path) as rec:
        await asyncio.to_thread(_give_admin_login, rec)
        base = f"http://localhost:{rec.app.http_port}"
        carol = rec.users["carol"]  # not on the recording list
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(
                    base_url=base, accept_downloads=True, viewport={"width": 1280, "height": 900}
                )
                page: Any = await context.new_page()
                blocked = csp_violations(page)
                await log_in(page, base, "admin", PASSWORD, "/users")

                # the profile: "always" puts Carol on the recording list
                await page.click(f'a[data-profile="{carol}"]')
                await expect(page).to_have_url(f"{base}/users/{carol}")
                await expect(page.locator("#recording-mode")).to_have_value("")
                await page.select_option("#recording-mode", "always")
                async with page.expect_response(lambda r: "/recording-list" in r.url) as saved:
                    await page.click("#save-recording")
                assert (await saved.value).status == 201
                await page.screenshot(path=str(ARTIFACTS / "user-profile.png"), full_page=True)

                # ... and Settings › Recording shows the same
                await page.goto("/settings/recording")
                mode = page.locator(f'select[data-mode="{carol}"]')
                await expect(mode).to_have_value("always")
                async with page.expect_response(lambda r: r.request.method == "PUT") as put:
                    await mode.select_option("never")
                assert (await put.value).status == 200

                # a change there is the profile's state too; "never" keeps her listed
                await page.goto(f"/users/{carol}")
                await expect(page.locator("#recording-mode")).to_have_value("never")
                await page.select_option("#recording-mode", "")
                async with page.expect_response(lambda r: r.request.method == "DELETE") as off:
                    await page.click("#save-recording")
                assert (await off.value).status == 204
                await page.goto("/settings/recording")
                await expect(page.locator(f'#available [data-user="{carol}"]')).to_have_count(1)
                await expect(page.locator(f'select[data-mode="{carol}"]')).to_have_count(0)

                # 500 users with 3 bad lines: every bad line reported, nothing changes
                before = await asyncio.to_thread(_count, rec)
                bad_file, good_file = tmp_path / "users-bad.csv", tmp_path / "users.csv"
                _write_csv(bad_file, with_bad_lines=True)
                _write_csv(good_file, with_bad_lines=False)
                await page.goto("/users")
                await page.set_input_files("#csv-file", str(bad_file))
                async with page.expect_response(lambda r: r.request.method == "POST") as refused:
                    await page.click("#csv-submit")
                assert (await refused.value).status == 422
                rows = page.locator("#csv-errors tbody tr")
                await expect(rows).to_have_count(3)
                assert [await r.get_attribute("data-line") for r in await rows.all()] == [
                    "102",
                    "303",
                    "404",
                ]
                await expect(rows.nth(0)).to_contain_text("SIP domains")
                await expect(rows.nth(1)).to_contain_text("sometimes")
                await expect(rows.nth(2)).to_contain_text("line 2")
                await page.screenshot(path=str(ARTIFACTS / "users-csv-refused.png"), full_page=True)
                assert await asyncio.to_thread(_count, rec) == before

                # the corrected file imports
                await page.set_input_files("#csv-file", str(good_file))
                async with page.expect_response(lambda r: r.request.method == "POST") as done:
                    await page.click("#csv-submit")
                assert (await done.value).status == 200
                await expect(page.locator("#csv-msg")).to_have_attribute("data-result", "imported")
                await expect(page.locator("#csv-errors")).to_be_hidden()
                assert await asyncio.to_thread(_count, rec) == before + 500
                # the list shows them once the page has reloaded
                await expect(page.locator("#users tbody tr")).to_have_count(
                    before + 500, timeout=10000
                )
                await page.goto("/settings/recording")
                await expect(page.locator('#listed tr[data-extension="5499"]')).to_have_count(1)
                assert blocked == [], blocked
            finally:
                await browser.close()
