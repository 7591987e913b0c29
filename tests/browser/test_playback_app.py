"""Playback as an installed app, in Debian's headless Chromium (issue 9, SPEC section 6).

Against a real callvault server on loopback, Alice (a playback user) on a
phone (390x844, touch, mobile):

- the portal is installable: the service worker is active and controls the
  page, and Chromium's own check (CDP ``Page.getInstallabilityErrors``) finds
  nothing missing;
- the home screen lists her recordings newest first with the manual's colour
  marks; swiping one unsaved recording right (real touch events through CDP)
  keeps it: the API says saved, its mark turns dark blue, the inbox count in
  the top bar drops; Discard asks first, then the audio is gone;
- the service worker's Keep and Discard (the path a notification's actions
  take, reached through its ``message`` event since a notification cannot be
  clicked headlessly) answer with the token alone and change the recording;
  answering twice gets the server's message;
- a push delivered to the worker (CDP ``ServiceWorker.deliverPushMessage``)
  shows a notification with Keep and Discard (``registration.getNotifications``),
  and the push handler's mapping is checked in the page with sw.js loaded;
- her lists page adds and removes a number; the notifications page turns push
  on (the browser's push service is stubbed: headless Chromium has none),
  lists the device, removes it, and keeps "ask me by e-mail too";
- no page breaks the CSP.

Screenshots go to ``test-artifacts/playback/``. Without Chromium or
Playwright the test is skipped, except under ``CI=true`` (tests/peers.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from callvault.db.models import Recording, User
from callvault.playback.answers import recording_action_token
from callvault.portal.passwords import hash_password
from tests.browser.test_portal_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    csp_violations,
    log_in,
)
from tests.e2e.harness import Recorder, running_recorder
from tests.peers import require, require_module
from tests.playback.helpers import recording

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "playback"
PASSWORD = "playback app password 1"
PHONE = {"width": 390, "height": 844}

# headless Chromium has no push service: subscribe() answers a subscription with
# a real P-256 key (the API checks it) and a push service URL that is never called
STUB_PUSH = """(() => {
  const b64 = (buf) => btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, "");
  let current = null;
  PushManager.prototype.getSubscription = function () { return Promise.resolve(current); };
  PushManager.prototype.subscribe = async function (options) {
    if (!options || !options.applicationServerKey) { throw new Error("no VAPID key"); }
    window.__vapidKeyLength = new Uint8Array(options.applicationServerKey).length;
    const pair = await crypto.subtle.generateKey(
      { name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
    const raw = await crypto.subtle.exportKey("raw", pair.publicKey);
    const keys = { p256dh: b64(raw), auth: b64(crypto.getRandomValues(new Uint8Array(16))) };
    const endpoint = "https://push.example.net/send/" + Math.random().toString(36).slice(2);
    current = {
      endpoint, toJSON: () => ({ endpoint, expirationTime: null, keys }),
      unsubscribe: () => { current = null; return Promise.resolve(true); },
    };
    return current;
  };
})();"""


def _prepare(rec: Recorder) -> dict[str, str]:
    """Alice's login and her recordings: four unsaved (newest first), one saved, one standard."""
    now = datetime.now(UTC)
    with rec.app.sessions() as session:
        alice = session.get(User, rec.users["alice"])
        assert alice is not None
        alice.login, alice.password_hash = "alice", hash_password(PASSWORD)
        alice.language = "en"
        alice.email = "alice@acme.example"

        def add(hours_ago: float, **kwargs: Any) -> str:
            return recording(
                session,
                rec.app.blobs,
                rec.tenant_id,
                rec.users["alice"],
                now - timedelta(hours=hours_ago),
                **kwargs,
            )

        ids = {
            "swipe": add(1, other_name="Swiped Customer"),
            "button": add(2, other_name="Button Customer"),
            "sw_keep": add(3, other_name="Notified Keep"),
            "sw_discard": add(4, other_name="Notified Discard"),
            "saved": add(
                30, saved=True, expires_at=now + timedelta(days=30), other_name="Kept Earlier"
            ),
            "standard": add(
                50,
                mode="always",
                saved=True,
                expires_at=now + timedelta(days=30),
                other_name="Standard Call",
            ),
        }
        session.commit()
    return ids


def _token(rec: Recorder, recording_id: str) -> str:
    with rec.app.sessions() as session:
        row = session.get(Recording, recording_id)
        assert row is not None
        token = recording_action_token(session, row)
        session.commit()  # the action key, should it have been made now
        return token


async def _until(page: Any, expression: str, timeout: float = 10.0) -> Any:
    """Poll through DevTools (``wait_for_function`` would need eval, which the CSP forbids)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not met in time: {expression}")
        await asyncio.sleep(0.05)


async def _api(page: Any, path: str) -> Any:
    """GET with the page's session, as its scripts do."""
    return await page.evaluate(
        "(p) => fetch(p, {headers: {Accept: 'application/json'}}).then(r => r.json())", path
    )


async def _marks(page: Any) -> dict[str, str]:
    items = await _api(page, "/api/v1/me/recordings")
    return {i["recording_id"]: i["mark"] for i in items["items"]}


async def _swipe_right(cdp: Any, box: dict[str, float]) -> None:
    """A finger on the item's left third, dragged right across most of it (CDP touch)."""
    y = box["y"] + box["height"] / 2
    x0 = box["x"] + 30
    await cdp.send(
        "Input.dispatchTouchEvent",
        {"type": "touchStart", "touchPoints": [{"x": x0, "y": y, "id": 1}]},
    )
    for step in range(1, 13):
        await cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchMove", "touchPoints": [{"x": x0 + step * 22, "y": y, "id": 1}]},
        )
        await asyncio.sleep(0.016)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


# the worker's answer path, from the page: {type: "answer"} over a MessageChannel
ASK_WORKER = """async (msg) => {
  const reg = await navigator.serviceWorker.ready;
  return await new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (ev) => resolve(ev.data);
    reg.active.postMessage(msg, [channel.port2]);
  });
}"""


async def test_playback_app_on_a_phone(tmp_path: Path) -> None:
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium at {CHROMIUM} (Debian package chromium), to test the portal in a real browser",
    )
    playwright = require_module("playwright.async_api", "Playwright drives the browser")
    async_playwright, expect = playwright.async_playwright, playwright.expect
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with running_recorder(tmp_path, mode="playback") as rec:
        ids = await asyncio.to_thread(_prepare, rec)
        # localhost: a secure context, as service workers and push require
        base = f"http://localhost:{rec.app.http_port}"
        async with async_playwright() as pw:
            # a profile on disk: Chromium installs nothing from an incognito context
            context = await pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                base_url=base,
                viewport=PHONE,
                has_touch=True,
                is_mobile=True,
                device_scale_factor=2,
            )
            try:
                await context.grant_permissions(["notifications"], origin=base)
                await context.add_init_script(STUB_PUSH)
                page = await context.new_page()
                blocked = csp_violations(page)
                cdp = await context.new_cdp_session(page)

                # the start page of a user is the home screen
                await log_in(page, base, "alice", PASSWORD, "/home")
                await page.goto("/")
                await expect(page).to_have_url(f"{base}/home")

                # installable: the worker is active and controls the page, Chromium agrees
                await _until(page, "navigator.serviceWorker.ready.then(r => !!r.active)")
                await page.reload()
                await _until(page, "!!navigator.serviceWorker.controller")
                manifest = await cdp.send("Page.getAppManifest")
                assert manifest.get("errors") == [], manifest
                report = await cdp.send("Page.getInstallabilityErrors")
                assert report["installabilityErrors"] == [], report

                # newest first, with the manual's colour marks; the inbox counts four
                items = page.locator("#recordings li.recording")
                await expect(items).to_have_count(6)
                order = await items.evaluate_all(
                    "els => els.map(e => [e.dataset.recording, e.dataset.mark])"
                )
                newest_first = ("swipe", "button", "sw_keep", "sw_discard", "saved", "standard")
                assert [r for r, _ in order] == [ids[k] for k in newest_first]
                assert [m for _, m in order] == ["unsaved"] * 4 + ["saved", "standard"]
                colours = await items.evaluate_all(
                    "els => els.map(e => getComputedStyle(e.querySelector('.swipe-card'))"
                    ".borderLeftColor)"
                )
                light, dark, teal = colours[0], colours[4], colours[5]
                assert len({light, dark, teal}) == 3, colours
                first = page.locator(f'li[data-recording="{ids["swipe"]}"]')
                await expect(first).to_contain_text("Swiped Customer")
                await expect(first.locator(".state")).to_contain_text("time left")
                badge = page.locator("#inbox-count")
                await expect(badge).to_be_visible()
                await expect(badge).to_have_text("4")
                await expect(first.locator("[data-keep]")).to_be_visible()
                await expect(
                    page.locator(f'li[data-recording="{ids["saved"]}"] [data-keep]')
                ).to_be_hidden()
                assert await page.evaluate("document.documentElement.scrollWidth") <= 390
                await page.screenshot(path=str(ARTIFACTS / "phone-home.png"), full_page=True)

                # swipe right keeps it: the API says saved, the mark turns dark blue
                box = await first.bounding_box()
                assert box is not None
                await _swipe_right(cdp, box)
                await expect(first).to_have_attribute("data-mark", "saved")
                assert (await _marks(page))[ids["swipe"]] == "saved"
                colour = await first.evaluate(
                    "e => getComputedStyle(e.querySelector('.swipe-card')).borderLeftColor"
                )
                assert colour == dark
                await expect(badge).to_have_text("3")
                assert await page.evaluate("location.pathname") == "/home"  # no tap went through

                # the inbox link lists the unsaved ones only
                await badge.click()
                await expect(page).to_have_url(f"{base}/home?mark=unsaved")
                await expect(items).to_have_count(3)

                # Discard asks first; Cancel keeps it, Discard deletes the audio
                button = page.locator(f'li[data-recording="{ids["button"]}"]')
                await button.locator("[data-discard]").click()
                await expect(page.locator("#discard-dialog")).to_be_visible()
                await page.screenshot(path=str(ARTIFACTS / "phone-discard.png"))
                await page.click("#discard-cancel")
                await expect(button).to_have_count(1)
                await button.locator("[data-discard]").click()
                await page.click("#discard-confirm")
                await expect(button).to_have_count(0)
                await expect(badge).to_have_text("2")
                audio = f"/api/v1/recordings/{ids['button']}/audio"
                gone = await page.evaluate("(p) => fetch(p).then(r => r.status)", audio)
                assert gone in (404, 410), gone

                # the worker's Keep and Discard: the token alone, no cookie, one path
                keep_token = await asyncio.to_thread(_token, rec, ids["sw_keep"])
                discard_token = await asyncio.to_thread(_token, rec, ids["sw_discard"])
                kept = await page.evaluate(
                    ASK_WORKER,
                    {
                        "type": "answer",
                        "answer": "keep",
                        "recording_id": ids["sw_keep"],
                        "token": keep_token,
                        "answer_url": "/api/v1/playback/answer",
                    },
                )
                assert kept["ok"] is True and kept["status"] == 200, kept
                discarded = await page.evaluate(
                    ASK_WORKER,
                    {
                        "type": "answer",
                        "answer": "discard",
                        "recording_id": ids["sw_discard"],
                        "token": discard_token,
                        "answer_url": "/api/v1/playback/answer",
                    },
                )
                assert discarded["ok"] is True, discarded
                marks = await _marks(page)
                assert marks[ids["sw_keep"]] == "saved"
                assert ids["sw_discard"] not in marks or marks[ids["sw_discard"]] != "unsaved"
                with rec.app.sessions() as session:
                    row = session.get(Recording, ids["sw_discard"])
                    assert row is not None and row.answer == "discard"
                    assert row.audio_deleted_at is not None
                # the open home screen heard the worker: nothing is left to answer
                await expect(badge).to_be_hidden()
                await expect(items).to_have_count(0)
                await expect(page.locator("#recordings-empty")).to_be_visible()
                # answering twice: the server's message comes back
                again = await page.evaluate(
                    ASK_WORKER,
                    {
                        "type": "answer",
                        "answer": "discard",
                        "recording_id": ids["sw_keep"],
                        "token": keep_token,
                        "answer_url": "/api/v1/playback/answer",
                    },
                )
                assert again["ok"] is False and again["status"] == 409 and again["message"]
                # a payload cannot send the worker's answer to another site
                astray = await page.evaluate(
                    ASK_WORKER,
                    {
                        "type": "answer",
                        "answer": "keep",
                        "token": keep_token,
                        "answer_url": "https://elsewhere.example/answer",
                    },
                )
                assert astray["ok"] is False and astray["status"] == 0

                # the push handler, in the page: sw.js defines its pieces there too
                await page.add_script_tag(url="/sw.js")
                shown = await page.evaluate(
                    """() => CVSW.notificationFromPush({
                      type: "playback.ask", recording_id: "abc", title: "Bewaren?",
                      body: "Customer · 10:02", token: "v1.t",
                      answer_url: "/api/v1/playback/answer",
                      actions: [{action: "keep", title: "Bewaren"},
                                {action: "discard", title: "Verwijderen"}]})"""
                )
                assert shown["title"] == "Bewaren?"
                assert shown["options"]["body"] == "Customer · 10:02"
                assert [a["action"] for a in shown["options"]["actions"]] == ["keep", "discard"]
                assert shown["options"]["actions"][0]["title"] == "Bewaren"
                assert shown["options"]["data"] == {
                    "recording_id": "abc",
                    "token": "v1.t",
                    "answer_url": "/api/v1/playback/answer",
                    "url": "/recordings/abc",
                    "lang": "",
                }
                stubbed = await page.evaluate(
                    """async () => {
                      const calls = [];
                      const fake = (url, init) => { calls.push([url, init]);
                        return Promise.resolve(new Response('{"error":{"message":"done"}}',
                                                            {status: 409})); };
                      const out = await CVSW.answer(
                        {token: "v1.t", answer_url: "/api/v1/playback/answer"}, "keep", fake);
                      return {out, url: calls[0][0], credentials: calls[0][1].credentials,
                              body: JSON.parse(calls[0][1].body)};
                    }"""
                )
                assert stubbed["out"]["message"] == "done" and stubbed["out"]["status"] == 409
                assert stubbed["credentials"] == "omit"
                assert stubbed["body"] == {"token": "v1.t", "answer": "keep"}

                # a real push into the worker: its notification carries both actions
                await cdp.send("ServiceWorker.enable")
                registrations = await page.evaluate(
                    "navigator.serviceWorker.getRegistration().then(r => r && r.scope)"
                )
                assert registrations == f"{base}/"
                registration_id = await _registration_id(cdp, page)
                payload = {
                    "type": "playback.ask",
                    "recording_id": ids["standard"],
                    "title": "Keep the call?",
                    "body": "Standard Call",
                    "token": "v1.test",
                    "answer_url": "/api/v1/playback/answer",
                    "actions": [
                        {"action": "keep", "title": "Keep"},
                        {"action": "discard", "title": "Discard"},
                    ],
                }
                await cdp.send(
                    "ServiceWorker.deliverPushMessage",
                    {
                        "origin": base,
                        "registrationId": registration_id,
                        "data": json.dumps(payload),
                    },
                )
                notes = await _until(
                    page,
                    """navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns =>
                         ns.length ? ns.map(n => ({title: n.title, body: n.body, data: n.data,
                                      actions: n.actions.map(a => a.action)})) : null)""",
                )
                assert notes[0]["title"] == "Keep the call?"
                assert notes[0]["actions"] == ["keep", "discard"]
                assert notes[0]["data"]["token"] == "v1.test"
                assert notes[0]["data"]["recording_id"] == ids["standard"]

                # the saved one opens the player: no download for a stream-only tenant?
                await page.goto("/home")
                await page.locator(f'li[data-recording="{ids["saved"]}"] a.open').click()
                await expect(page).to_have_url(f"{base}/recordings/{ids['saved']}")
                await expect(page.locator("#rec-audio")).to_be_visible()
                await page.screenshot(path=str(ARTIFACTS / "phone-player.png"), full_page=True)

                # my lists: add a number to the blacklist, remove it again
                await page.goto("/lists")
                await expect(page.locator("#blacklist")).to_contain_text("never kept, never asked")
                await page.fill("#blacklist input[name=value]", "+31 6 5555 5555")
                await page.click("#blacklist button[type=submit]")
                entry = page.locator("#blacklist li", has_text="+31655555555")
                await expect(entry).to_have_count(1)
                await page.screenshot(path=str(ARTIFACTS / "phone-lists.png"), full_page=True)
                await entry.locator("button[data-remove-contact]").click()
                await expect(entry).to_have_count(0)
                await page.fill("#whitelist input[name=value]", "nonsense")
                await page.click("#whitelist button[type=submit]")
                await expect(page.locator("#whitelist [data-msg]")).to_be_visible()

                # notifications: this device on (stubbed push service), listed, removed
                await page.goto("/notifications")
                toggle = page.locator("#push-toggle")
                await expect(toggle).to_be_enabled()
                await expect(toggle).not_to_be_checked()
                await toggle.check()
                device = page.locator("#device-list li")
                await expect(device).to_have_count(1)
                await expect(device).to_contain_text("This device")
                assert await page.evaluate("window.__vapidKeyLength") == 65
                await page.screenshot(path=str(ARTIFACTS / "phone-notifications.png"))
                await device.locator("button[data-remove-device]").click()
                await expect(device).to_have_count(0)
                await expect(toggle).not_to_be_checked()
                # ask me by e-mail too
                async with page.expect_response(lambda r: r.request.method == "PATCH") as sent:
                    await page.check("#playback-email")
                assert (await sent.value).status == 200
                with rec.app.sessions() as session:
                    assert session.scalar(
                        select(User.playback_email).where(User.id == rec.users["alice"])
                    )
                assert await page.evaluate("document.documentElement.scrollWidth") <= 390
                assert blocked == [], blocked
            finally:
                await context.close()


async def _registration_id(cdp: Any, page: Any) -> str:
    """The worker's registration id, from DevTools' ServiceWorker domain events."""
    found: list[str] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: found.extend(
            r["registrationId"] for r in event["registrations"] if not r.get("isDeleted")
        ),
    )
    await cdp.send("ServiceWorker.disable")
    await cdp.send("ServiceWorker.enable")
    deadline = asyncio.get_running_loop().time() + 10
    while not found:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("no service worker registration reported")
        await asyncio.sleep(0.05)
    return found[0]
