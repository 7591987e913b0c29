/* callvault as an installed web app (SPEC section 6, Playback): the service
   worker, the inbox count in the top bar, the home screen (colour marks, swipe
   right to keep), the user's lists, push on this device. Plain JavaScript on
   portal.js's CV helpers; everything goes through the JSON API. */
"use strict";

var CVApp = (function () {
  /* ---------- the service worker: installable, answers notifications ---------- */
  var worker = null;
  if ("serviceWorker" in navigator) {
    worker = navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () {
      return null;  // no worker (e.g. plain http on a LAN address): the portal still works
    });
  }

  function count(out) {
    if (Array.isArray(out)) { return out.length; }
    if (out && typeof out.count === "number") { return out.count; }
    if (out && Array.isArray(out.items)) { return out.items.length; }
    return 0;
  }

  /* ---------- the inbox count: recordings still waiting for keep or discard ---------- */
  function refreshInbox() {
    var badge = document.getElementById("inbox-count");
    if (!badge) { return Promise.resolve(); }
    return CV.api("GET", "/api/v1/me/inbox").then(function (out) {
      var n = count(out);
      badge.querySelector(".count").textContent = String(n);
      badge.setAttribute("aria-label", CV.t("home.inbox") + ": " + n);
      badge.setAttribute("data-count", String(n));
      badge.hidden = n === 0;
    }).catch(function () { badge.hidden = true; });
  }
  refreshInbox();

  var answeredHandlers = [];
  if ("serviceWorker" in navigator) {
    /* the worker answered from a notification: redraw what changed */
    navigator.serviceWorker.addEventListener("message", function (ev) {
      if (!ev.data || ev.data.type !== "answered") { return; }
      refreshInbox();
      answeredHandlers.forEach(function (h) { h(ev.data.result); });
    });
  }

  /* a device's name from its user agent: "Chrome on Android" */
  function deviceName(ua) {
    var s = ua || navigator.userAgent || "";
    var browser = /Edg\//.test(s) ? "Edge" : /OPR\//.test(s) ? "Opera" :
      /Firefox\//.test(s) ? "Firefox" : /(Chrome|CriOS)\//.test(s) ? "Chrome" :
      /Safari\//.test(s) ? "Safari" : "Browser";
    var system = /Android/.test(s) ? "Android" : /iPhone/.test(s) ? "iPhone" :
      /iPad/.test(s) ? "iPad" : /Windows/.test(s) ? "Windows" : /Mac OS X/.test(s) ? "macOS" :
      /CrOS/.test(s) ? "ChromeOS" : /Linux/.test(s) ? "Linux" : "";
    return (system ? browser + " " + CV.t("push.on") + " " + system : browser).slice(0, 100);
  }

  /* "2 d 5 h" / "3 h 10 min" / "5 min" */
  function timeLeft(seconds) {
    var s = Math.max(0, Math.floor(seconds || 0));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d > 0) { return d + " " + CV.t("home.d") + " " + h + " " + CV.t("home.h"); }
    if (h > 0) { return h + " " + CV.t("home.h") + " " + m + " " + CV.t("home.min"); }
    return m + " " + CV.t("home.min");
  }

  return {
    worker: worker, refreshInbox: refreshInbox, deviceName: deviceName, timeLeft: timeLeft,
    onAnswered: function (h) { answeredHandlers.push(h); }
  };
})();

/* ---------- home screen: the recordings, newest first, colour marks ---------- */
(function () {
  var root = document.getElementById("home");
  if (!root) { return; }
  var list = document.getElementById("recordings");
  var empty = document.getElementById("recordings-empty");
  var more = document.getElementById("recordings-more");
  var msg = document.getElementById("home-msg");
  var dialog = document.getElementById("discard-dialog");
  var template = document.getElementById("recording-item");
  var mark = root.getAttribute("data-mark");
  var cursor = null;
  var SWIPE = 0.35;  // of the item's width, to the right: keep

  function other(rec) {
    var o = rec.other_party || rec.counterpart || null;
    if (o && typeof o === "object") {
      return [o.name, o.number || o.aor].filter(Boolean).join(" ");
    }
    return o || rec.other_name || rec.other_number || rec.from_number || rec.to_number || "";
  }

  function local(at) {
    if (!at) { return ""; }
    var d = new Date(at);
    if (isNaN(d.getTime())) { return String(at).slice(0, 16).replace("T", " "); }
    return d.toLocaleString(document.documentElement.lang || undefined,
      { dateStyle: "medium", timeStyle: "short" });
  }

  function duration(ms) {
    var s = Math.round((ms || 0) / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function stateText(rec) {
    if (rec.mark === "unsaved") {
      return CV.t("home.mark.unsaved") + " · " + CV.t("home.time_left") + " " +
        CVApp.timeLeft(rec.time_left_s);
    }
    return CV.t("home.mark." + (rec.mark || "standard"));
  }

  /* an inbox item is an unsaved one; its time left is until its expiry */
  function fromInbox(item) {
    var left = item.expires_at ? (new Date(item.expires_at).getTime() - Date.now()) / 1000 : null;
    return Object.assign({ mark: "unsaved", time_left_s: left }, item);
  }

  function draw(li, rec) {
    li.className = "recording mark-" + (rec.mark || "standard");
    li.setAttribute("data-recording", rec.recording_id);
    li.setAttribute("data-mark", rec.mark || "standard");
    var link = li.querySelector("a.open");
    link.href = "/recordings/" + encodeURIComponent(rec.recording_id);
    li.querySelector(".party").textContent = other(rec) || CV.t("home.unknown");
    li.querySelector(".when").textContent = local(rec.started_at) + " · " + duration(rec.duration_ms);
    li.querySelector(".state").textContent = stateText(rec);
    var unsaved = rec.mark === "unsaved";
    li.querySelector("[data-keep]").hidden = !unsaved;
    li.querySelector("[data-discard]").hidden = !unsaved;
    li.querySelector(".swipe-card").style.transform = "";
  }

  function item(rec) {
    var li = template.content.firstElementChild.cloneNode(true);
    li.recording = rec;
    draw(li, rec);
    return li;
  }

  /* the unsaved ones are the inbox; the others a filtered walk of the home list */
  function load(next) {
    var url = mark === "unsaved" ? "/api/v1/me/inbox" : "/api/v1/me/recordings?limit=50" +
      (next ? "&cursor=" + encodeURIComponent(next) : "");
    list.setAttribute("aria-busy", "true");
    return CV.api("GET", url).then(function (out) {
      var items = (out && out.items) || [];
      if (mark === "unsaved") { items = items.map(fromInbox); }
      if (mark) { items = items.filter(function (rec) { return rec.mark === mark; }); }
      if (!next) { list.textContent = ""; }
      items.forEach(function (rec) { list.appendChild(item(rec)); });
      cursor = (out && out.next_cursor) || null;
      more.hidden = !cursor;
      empty.hidden = list.children.length > 0;
    }).catch(function (err) {
      list.textContent = "";
      CV.fail(msg, err);
    }).then(function () { list.setAttribute("aria-busy", "false"); });
  }

  function settle(li, rec) {
    if (mark && rec.mark !== mark) { li.remove(); } else { li.recording = rec; draw(li, rec); }
    empty.hidden = list.children.length > 0;
    CVApp.refreshInbox();
  }

  function keep(li) {
    var rec = li.recording;
    li.classList.add("busy");
    return CV.api("POST", "/api/v1/recordings/" + encodeURIComponent(rec.recording_id) + "/keep")
      .then(function (out) {
        var kept = Object.assign({}, rec, { mark: "saved", time_left_s: null,
                                            expires_at: out && out.expires_at });
        settle(li, kept);
        CV.ok(msg, CV.t("home.kept"));
      }).catch(function (err) {
        draw(li, rec);
        CV.fail(msg, err);
      }).then(function () { li.classList.remove("busy"); });
  }

  function discard(li) {
    var rec = li.recording;
    li.classList.add("busy");
    return CV.api("POST", "/api/v1/recordings/" + encodeURIComponent(rec.recording_id) + "/discard")
      .then(function () {
        li.remove();
        empty.hidden = list.children.length > 0;
        CVApp.refreshInbox();
        CV.ok(msg, CV.t("home.discarded"));
      }).catch(function (err) { CV.fail(msg, err); })
      .then(function () { li.classList.remove("busy"); });
  }

  CV.on(list, "button[data-keep]", "click", function (ev, button) {
    keep(button.closest("li.recording"));
  });
  CV.on(list, "button[data-discard]", "click", function (ev, button) {
    var li = button.closest("li.recording");
    dialog.returnValue = "";
    dialog.onclose = function () {
      if (dialog.returnValue === "discard") { discard(li); }
    };
    dialog.showModal();
  });
  more.addEventListener("click", function () { load(cursor); });

  /* swipe right keeps an unsaved recording (touch: touch-action pan-y leaves
     vertical scrolling to the browser, the horizontal move comes here) */
  var drag = null;
  list.addEventListener("pointerdown", function (ev) {
    var li = ev.target.closest("li.recording");
    if (!li || li.getAttribute("data-mark") !== "unsaved" || ev.target.closest("button")) { return; }
    if (ev.pointerType === "mouse" && ev.button !== 0) { return; }
    drag = { li: li, id: ev.pointerId, x: ev.clientX, y: ev.clientY, dx: 0, moved: false };
  });
  list.addEventListener("pointermove", function (ev) {
    if (!drag || ev.pointerId !== drag.id) { return; }
    var dx = ev.clientX - drag.x;
    if (!drag.moved && Math.abs(ev.clientY - drag.y) > Math.abs(dx)) { drag = null; return; }
    if (Math.abs(dx) > 8 && !drag.moved) {
      drag.moved = true;
      drag.li.classList.add("swiping");
      try { drag.li.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic pointer */ }
    }
    drag.dx = Math.max(0, dx);
    drag.li.querySelector(".swipe-card").style.transform = "translateX(" + drag.dx + "px)";
  });
  function endDrag(ev, cancelled) {
    if (!drag || ev.pointerId !== drag.id) { return; }
    var d = drag;
    drag = null;
    d.li.classList.remove("swiping");
    if (d.moved) {
      // the click a drag ends with must not open the recording
      d.li.addEventListener("click", function (e) { e.preventDefault(); }, { once: true, capture: true });
    }
    if (!cancelled && d.dx > d.li.offsetWidth * SWIPE) {
      keep(d.li);
    } else {
      d.li.querySelector(".swipe-card").style.transform = "";
    }
  }
  list.addEventListener("pointerup", function (ev) { endDrag(ev, false); });
  list.addEventListener("pointercancel", function (ev) { endDrag(ev, true); });

  CVApp.onAnswered(function () { load(null); });
  load(null);
})();

/* ---------- a user's blacklist and whitelist (own page, and the admin's user page) ---------- */
(function () {
  var root = document.getElementById("contact-lists");
  if (!root) { return; }
  var base = "/api/v1/tenants/" + root.getAttribute("data-tenant") + "/users/" +
    root.getAttribute("data-user") + "/contacts";

  function row(contact) {
    var li = document.createElement("li");
    li.setAttribute("data-contact", contact.id);
    var name = document.createElement("span");
    name.className = "name";
    name.textContent = contact.value;
    var x = document.createElement("button");
    x.type = "button";
    x.className = "icon cross";
    x.setAttribute("data-remove-contact", contact.id);
    x.setAttribute("aria-label", CV.t("common.remove") + ": " + contact.value);
    x.appendChild(document.getElementById("contact-remove-icon").content.cloneNode(true));
    li.appendChild(name);
    li.appendChild(x);
    return li;
  }

  function refreshEmpty(section) {
    section.querySelector("[data-empty]").hidden =
      section.querySelector("[data-entries]").children.length > 0;
  }

  CV.on(root, "form[data-add-contact]", "submit", function (ev, form) {
    ev.preventDefault();
    var value = form.elements.value.value.trim();
    if (!value) { return; }
    var section = form.closest("section");
    var msg = section.querySelector("[data-msg]");
    CV.api("POST", base, { list: form.getAttribute("data-add-contact"), value: value })
      .then(function (out) {
        section.querySelector("[data-entries]").appendChild(row(out));
        refreshEmpty(section);
        form.reset();
        CV.ok(msg);
      }).catch(function (err) { CV.fail(msg, err); });
  });

  CV.on(root, "button[data-remove-contact]", "click", function (ev, button) {
    var section = button.closest("section");
    button.disabled = true;
    CV.api("DELETE", base + "/" + button.getAttribute("data-remove-contact")).then(function () {
      button.closest("li").remove();
      refreshEmpty(section);
      CV.ok(section.querySelector("[data-msg]"));
    }).catch(function (err) {
      button.disabled = false;
      CV.fail(section.querySelector("[data-msg]"), err);
    });
  });
})();

/* ---------- notifications: push on this device, the subscribed devices, e-mail ---------- */
(function () {
  var here = document.getElementById("push-here");
  if (!here) { return; }
  var toggle = document.getElementById("push-toggle");
  var devices = document.getElementById("device-list");
  var devicesEmpty = document.getElementById("devices-empty");
  var devicesMsg = document.querySelector("#push-devices [data-msg]");
  var base = "/api/v1/me/push-subscriptions";
  var supported = "serviceWorker" in navigator && "PushManager" in window &&
    "Notification" in window && CVApp.worker;

  function b64urlToBytes(text) {
    var padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }

  function registration() {
    return navigator.serviceWorker.ready;
  }

  function currentSubscription() {
    return registration().then(function (reg) { return reg.pushManager.getSubscription(); });
  }

  function items(out) { return Array.isArray(out) ? out : (out && out.items) || []; }

  function listDevices() {
    return CV.api("GET", base).then(function (out) {
      var rows = items(out);
      devices.textContent = "";
      rows.forEach(function (d) {
        var li = document.createElement("li");
        li.setAttribute("data-device", d.id);
        var name = document.createElement("span");
        name.className = "name";
        name.textContent = d.device_name || CV.t("push.device");
        var since = document.createElement("span");
        since.className = "meta";
        since.textContent = d.created_at ? CV.t("push.since") + " " + String(d.created_at).slice(0, 10) : "";
        var remove = document.createElement("button");
        remove.type = "button";
        remove.setAttribute("data-remove-device", d.id);
        var own = mine();
        if (own && own.id === d.id) {
          li.classList.add("this-device");
          since.textContent += " · " + CV.t("push.this_device");
        }
        remove.textContent = CV.t("common.remove");
        remove.setAttribute("aria-label", CV.t("common.remove") + ": " + name.textContent);
        li.appendChild(name);
        li.appendChild(since);
        li.appendChild(remove);
        devices.appendChild(li);
      });
      devicesEmpty.hidden = rows.length > 0;
      devices.setAttribute("aria-busy", "false");
      return rows;
    }).catch(function (err) { CV.fail(devicesMsg, err); return []; });
  }

  function subscribe() {
    return Notification.requestPermission().then(function (permission) {
      if (permission !== "granted") {
        document.getElementById("push-denied").hidden = false;
        throw new Error(CV.t("push.denied"));
      }
      return Promise.all([CV.api("GET", "/api/v1/push/vapid-public-key"), registration()]);
    }).then(function (both) {
      var key = both[0] && (both[0].public_key || both[0].key || both[0]);
      return both[1].pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: b64urlToBytes(String(key))
      });
    }).then(function (subscription) {
      var json = subscription.toJSON();
      return CV.api("POST", base, {
        endpoint: json.endpoint,
        keys: { p256dh: json.keys.p256dh, auth: json.keys.auth },
        device_name: CVApp.deviceName()
      }).then(function (out) { remember(json.endpoint, out.id); return out; });
    });
  }

  /* the list does not show endpoints (they are the device's address): this
     browser remembers which row is its own */
  var MINE = "cv-push-device";
  function remember(endpoint, id) {
    try { localStorage.setItem(MINE, JSON.stringify({ endpoint: endpoint, id: id })); } catch (e) { /* private mode */ }
  }
  function mine() {
    try { return JSON.parse(localStorage.getItem(MINE) || "null"); } catch (e) { return null; }
  }

  /* this device's row: the one whose endpoint is this browser's */
  function unsubscribe() {
    return currentSubscription().then(function (subscription) {
      if (!subscription) { return null; }
      var own = mine();
      var gone = own && own.endpoint === subscription.endpoint ?
        CV.api("DELETE", base + "/" + own.id).catch(function (err) {
          if (err.status !== 404) { throw err; }  // removed on another device already
        }) : Promise.resolve();
      return gone.then(function () { remember("", null); return subscription.unsubscribe(); });
    });
  }

  if (!supported) {
    document.getElementById("push-unsupported").hidden = false;
  } else {
    if (Notification.permission === "denied") { document.getElementById("push-denied").hidden = false; }
    currentSubscription().then(function (subscription) {
      toggle.checked = !!subscription;
      toggle.disabled = false;
    });
    toggle.addEventListener("change", function () {
      toggle.disabled = true;
      var on = toggle.checked;
      (on ? subscribe() : unsubscribe()).then(function () {
        CV.ok(toggle);
        return listDevices();
      }).catch(function (err) {
        toggle.checked = !on;
        CV.fail(toggle, err);
      }).then(function () { toggle.disabled = false; });
    });
  }

  CV.on(devices, "button[data-remove-device]", "click", function (ev, button) {
    button.disabled = true;
    CV.api("DELETE", base + "/" + button.getAttribute("data-remove-device")).then(function () {
      button.closest("li").remove();
      devicesEmpty.hidden = devices.children.length > 0;
      CV.ok(devicesMsg);
      if (!supported) { return null; }
      /* removing this very device turns its switch off too */
      return currentSubscription().then(function (subscription) {
        var own = mine();
        if (subscription && own && String(own.id) === button.getAttribute("data-remove-device") &&
            own.endpoint === subscription.endpoint) {
          toggle.checked = false;
          remember("", null);
          return subscription.unsubscribe();
        }
        return null;
      });
    }).catch(function (err) { button.disabled = false; CV.fail(devicesMsg, err); });
  });

  var email = document.getElementById("playback-email");
  email.addEventListener("change", function () {
    var wanted = email.checked;
    CV.api("PATCH", "/api/v1/me", { playback_email: wanted }).then(function (out) {
      email.checked = out && typeof out.playback_email === "boolean" ? out.playback_email : wanted;
      CV.ok(email);
    }).catch(function (err) { email.checked = !wanted; CV.fail(email, err); });
  });

  listDevices();
})();

/* ---------- the player: share a link through the phone's own apps (WhatsApp, mail, SMS) ---------- */
(function () {
  var copy = document.getElementById("share-copy");
  var url = document.getElementById("share-url-text");
  if (!copy || !url || !navigator.share) { return; }
  var share = document.createElement("button");
  share.type = "button";
  share.id = "share-native";
  share.textContent = CV.t("rec.share_native");
  copy.insertAdjacentElement("afterend", share);
  share.addEventListener("click", function () {
    navigator.share({ title: document.title, url: url.value }).catch(function (err) {
      if (err && err.name !== "AbortError") { CV.toast(err.message || CV.t("common.error")); }
    });
  });
})();

/* ---------- the recording page: Playback's question for the recording's own user ---------- */
(function () {
  var box = document.getElementById("playback-question");
  var root = document.getElementById("recording");
  if (!box || !root) { return; }
  var msg = document.getElementById("answer-msg");
  box.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-answer]");
    if (!button) { return; }
    var answer = button.getAttribute("data-answer");
    if (answer === "discard" && !window.confirm(box.getAttribute("data-confirm"))) { return; }
    button.disabled = true;
    CV.api("POST", "/api/v1/recordings/" + encodeURIComponent(root.getAttribute("data-id")) + "/" + answer)
      .then(function () { window.location.reload(); })
      .catch(function (err) { button.disabled = false; CV.fail(msg, err); });
  });
})();
