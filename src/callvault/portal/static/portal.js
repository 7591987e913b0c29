/* callvault portal: page behaviour. Plain JavaScript, no build step, nothing
   fetched from outside this server. Every action calls the JSON API with the
   session cookie and the X-CSRF-Token header; the API's error message is shown
   next to the control that caused it. */
"use strict";

var CV = (function () {
  var messages = {};
  try {
    messages = JSON.parse(document.getElementById("cv-messages").textContent);
  } catch (e) { messages = {}; }

  function t(key) { return messages[key] || key; }

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function errorText(status, body) {
    if (body && body.error && body.error.message) { return body.error.message; }
    if (body && body.detail) {
      return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    }
    return t("common.error") + " (HTTP " + status + ")";
  }

  /* fetch JSON; resolves to the parsed body (or null), rejects with an Error
     whose message is the API's own message and whose .status is the HTTP status */
  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (method !== "GET" && method !== "HEAD") { headers["X-CSRF-Token"] = csrf(); }
    if (body !== undefined) { headers["Content-Type"] = "application/json"; }
    return fetch(url, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
        if (!response.ok) {
          var err = new Error(errorText(response.status, data));
          err.status = response.status;
          throw err;
        }
        return data;
      });
    });
  }

  var toastTimer = null;
  function toast(text) {
    var el = document.getElementById("toast");
    if (!el) { return; }
    el.textContent = text;
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { el.hidden = true; }, 2500);
  }

  /* the message element that belongs to a control: the nearest [data-msg] in
     its field, form or card */
  function msgFor(el) {
    var box = el.closest(".field, form, .card, section") || document.body;
    return box.querySelector("[data-msg]");
  }

  function say(el, text, isError) {
    var msg = el && (el.hasAttribute && el.hasAttribute("data-msg") ? el : msgFor(el));
    if (!msg) { if (text) { toast(text); } return; }
    msg.textContent = text || "";
    msg.hidden = !text;
    msg.classList.toggle("error", !!isError);
    msg.classList.toggle("ok", !isError && !!text);
  }

  function ok(el, text) { say(el, "", false); toast(text || t("common.saved")); }
  function fail(el, err) { say(el, err.message || String(err), true); }

  function on(root, selector, event, handler) {
    root.addEventListener(event, function (ev) {
      var target = ev.target.closest(selector);
      if (target && root.contains(target)) { handler(ev, target); }
    });
  }

  /* a play link for one recording: the audio URL carries a token bound to this
     portal session that lasts minutes; asking for it is the audited "play" */
  function playLink(audioUrl) {
    return api("POST", audioUrl.replace(/\/audio(\?.*)?$/, "/play")).then(function (out) {
      return out.url;
    });
  }

  /* give a player a (fresh) play link */
  function setLink(player, url) {
    player.setAttribute("data-link-at", String(Date.now()));
    player.src = url;
  }

  /* when a player's play link has expired (a long pause), fetch a fresh one and
     carry on where it was; an error with a fresh link is just an error */
  function renewOnExpiry(player, audioUrl) {
    var renewing = false;
    var loaded = Date.now();
    player.addEventListener("error", function () {
      if (renewing || !player.error || !player.getAttribute("src")) { return; }
      var since = Date.now() - Number(player.getAttribute("data-link-at") || loaded);
      if (since < 60000) {
        toast(t("common.error") + " (audio " + player.error.code + ")");
        return;
      }
      renewing = true;
      var at = player.currentTime || 0;
      var wasPlaying = !player.paused;
      playLink(audioUrl()).then(function (url) {
        setLink(player, url);
        player.currentTime = at;
        if (wasPlaying) { player.play(); }
      }).catch(function (err) {
        toast(t("common.error") + " (audio " + (err.status || player.error.code) + ")");
      }).then(function () { renewing = false; });
    });
  }

  return {
    t: t, api: api, say: say, ok: ok, fail: fail, toast: toast, on: on,
    playLink: playLink, setLink: setLink, renewOnExpiry: renewOnExpiry
  };
})();

/* ---------- every page: language switch submits on change ---------- */
document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
  el.addEventListener("change", function () { el.form.submit(); });
});

/* ---------- login ---------- */
(function () {
  var form = document.getElementById("login-form");
  if (!form) { return; }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { login: form.elements.login.value, password: form.elements.password.value };
    CV.api("POST", "/api/v1/session", body).then(function () {
      window.location.assign(form.getAttribute("data-next") || "/");
    }).catch(function (err) {
      CV.say(form.querySelector("[data-msg]"), err.message || CV.t("login.failed"), true);
    });
  });
})();

/* ---------- Settings › Recording ---------- */
(function () {
  var root = document.getElementById("settings");
  if (!root) { return; }
  var tenant = root.getAttribute("data-tenant");
  var base = "/api/v1/tenants/" + tenant;
  var bulkMin = parseInt(root.getAttribute("data-bulk-min"), 10);

  var accept = document.getElementById("accept-form");
  if (accept) {
    accept.addEventListener("submit", function (ev) {
      ev.preventDefault();
      CV.api("POST", base + "/legal-notice/accept", {
        version: accept.getAttribute("data-version"),
        purpose: accept.elements.purpose.value
      }).then(function () { window.location.reload(); })
        .catch(function (err) { CV.fail(accept, err); });
    });
    return;  // nothing else is on the page before the notice is accepted
  }

  var listed = document.getElementById("listed");
  var available = document.getElementById("available");
  var listMsg = document.getElementById("list-msg");
  var empty = document.getElementById("list-empty");

  function refreshEmpty() { empty.hidden = listed.children.length > 0; }

  function listedRow(id, name, extension, mode) {
    var row = document.getElementById("listed-row").content.firstElementChild.cloneNode(true);
    row.setAttribute("data-user", id);
    row.setAttribute("data-name", name);
    row.setAttribute("data-extension", extension);
    row.querySelector(".name").textContent = name;
    row.querySelector(".ext").textContent = extension;
    var select = row.querySelector("select.mode");
    select.setAttribute("data-mode", id);
    select.value = mode;
    select.setAttribute("aria-label", select.getAttribute("aria-label") + ": " + name);
    var cross = row.querySelector("button.cross");
    cross.setAttribute("data-remove", id);
    cross.setAttribute("aria-label", cross.getAttribute("aria-label") + ": " + name);
    return row;
  }

  function availableRow(id, name, extension) {
    var row = document.getElementById("available-row").content.firstElementChild.cloneNode(true);
    row.setAttribute("data-user", id);
    row.setAttribute("data-name", name);
    row.setAttribute("data-extension", extension);
    row.querySelector(".name").textContent = name;
    row.querySelector(".ext").textContent = extension;
    var plus = row.querySelector("button.plus");
    plus.setAttribute("data-add", id);
    plus.setAttribute("aria-label", plus.getAttribute("aria-label") + ": " + name);
    return row;
  }

  CV.on(available, "button[data-add]", "click", function (ev, button) {
    var item = button.closest("li");
    var id = button.getAttribute("data-add");
    button.disabled = true;
    CV.api("POST", base + "/recording-list", { user_id: parseInt(id, 10) }).then(function (out) {
      item.remove();
      listed.appendChild(listedRow(id, out.name, out.extension || "", out.mode));
      refreshEmpty();
      CV.ok(listMsg);
    }).catch(function (err) { button.disabled = false; CV.fail(listMsg, err); });
  });

  CV.on(listed, "button[data-remove]", "click", function (ev, button) {
    var row = button.closest("tr");
    var id = button.getAttribute("data-remove");
    button.disabled = true;
    CV.api("DELETE", base + "/recording-list/" + id).then(function () {
      row.remove();
      available.appendChild(availableRow(id, row.getAttribute("data-name"),
        row.getAttribute("data-extension") || ""));
      refreshEmpty();
      CV.ok(listMsg);
    }).catch(function (err) { button.disabled = false; CV.fail(listMsg, err); });
  });

  CV.on(listed, "select[data-mode]", "change", function (ev, select) {
    var previous = select.getAttribute("data-saved") || null;
    CV.api("PUT", base + "/recording-list/" + select.getAttribute("data-mode"), { mode: select.value })
      .then(function (out) { select.setAttribute("data-saved", out.mode); CV.ok(listMsg); })
      .catch(function (err) { if (previous) { select.value = previous; } CV.fail(listMsg, err); });
  });
  listed.querySelectorAll("select[data-mode]").forEach(function (s) {
    s.setAttribute("data-saved", s.value);
  });

  /* one setting = one PATCH; the API's validation message appears below the field */
  function save(field, value, control) {
    var body = {};
    body[field] = value;
    return CV.api("PATCH", base + "/recording-settings", body)
      .then(function (out) { CV.ok(control); return out; })
      .catch(function (err) { CV.fail(control, err); throw err; });
  }

  var slider = document.getElementById("retention_days");
  var sliderOut = document.getElementById("retention-value");
  var bulkField = document.getElementById("bulk-field");
  function showRetention() {
    sliderOut.querySelector("strong").textContent = slider.value;
    bulkField.hidden = parseInt(slider.value, 10) < bulkMin;
  }
  slider.addEventListener("input", showRetention);

  document.querySelectorAll("#general-settings [data-field]").forEach(function (control) {
    var field = control.getAttribute("data-field");
    control.addEventListener("change", function (ev) {
      var value;
      if (control.getAttribute("role") === "radiogroup") {
        value = ev.target.value;
      } else if (control.type === "checkbox") {
        /* data-inverted: a box that turns a setting off ("do not store in the portal") */
        value = control.hasAttribute("data-inverted") ? !control.checked : control.checked;
      } else if (control.type === "range" || control.type === "number") {
        value = parseInt(control.value, 10);
      } else if (field === "delivery_email") {
        value = control.value.trim() || null;
      } else {
        value = control.value.trim();
      }
      save(field, value, control).then(function (out) {
        if (field === "retention_days" && out && typeof out.retention_days === "number") {
          slider.value = out.retention_days;
          showRetention();
        }
      }).catch(function () { /* message shown */ });
    });
  });
})();

/* ---------- Reports › Calls: one player for the whole table ---------- */
(function () {
  var table = document.getElementById("calls");
  if (!table) { return; }
  var bar = document.getElementById("player-bar");
  var player = document.getElementById("player");
  var title = document.getElementById("player-title");
  var current = null;
  function start() {
    var started = player.play();
    if (started && started.catch) {
      started.catch(function (err) { CV.toast(err.message || CV.t("common.error")); });
    }
  }
  CV.on(table, "button[data-play]", "click", function (ev, button) {
    var src = button.getAttribute("data-play");
    bar.hidden = false;
    if (current === src && !player.paused) { player.pause(); return; }
    if (current === src) { start(); return; }
    current = src;
    title.textContent = button.getAttribute("data-title");
    table.querySelectorAll("tr.playing").forEach(function (r) { r.classList.remove("playing"); });
    button.closest("tr").classList.add("playing");
    CV.playLink(src).then(function (url) {
      if (current !== src) { return; }  /* another row was chosen meanwhile */
      CV.setLink(player, url);
      start();
    }).catch(function (err) { CV.toast(err.message || CV.t("common.error")); });
  });
  CV.renewOnExpiry(player, function () { return current; });
})();

/* ---------- one recording: labels, comments, share links ---------- */
(function () {
  var root = document.getElementById("recording");
  if (!root) { return; }
  var base = "/api/v1/recordings/" + root.getAttribute("data-id");
  var recAudio = document.getElementById("rec-audio");
  if (recAudio) { CV.renewOnExpiry(recAudio, function () { return base + "/audio"; }); }

  var labelForm = document.getElementById("label-form");
  var labels = document.getElementById("labels");
  labelForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = labelForm.elements.text.value.trim();
    if (!text) { return; }
    CV.api("POST", base + "/labels", { text: text }).then(function (out) {
      var chip = document.createElement("span");
      chip.className = "chip";
      var id = out && (out.id !== undefined ? out.id : out.text);
      chip.setAttribute("data-label", id);
      chip.setAttribute("data-text", (out && out.text) || text);
      chip.appendChild(document.createTextNode(((out && out.text) || text) + " "));
      var x = document.createElement("button");
      x.type = "button";
      x.className = "icon cross small";
      x.setAttribute("data-remove-label", id);
      x.setAttribute("aria-label", CV.t("common.remove") + " " + text);
      /* the inline SVG icon from the page (no Unicode symbol: fonts may lack it) */
      x.appendChild(document.getElementById("label-remove-icon").content.cloneNode(true));
      chip.appendChild(x);
      labels.appendChild(chip);
      labelForm.reset();
      CV.ok(labelForm);
    }).catch(function (err) { CV.fail(labelForm, err); });
  });
  CV.on(labels, "button[data-remove-label]", "click", function (ev, button) {
    var chip = button.closest(".chip");
    CV.api("DELETE", base + "/labels/" + encodeURIComponent(button.getAttribute("data-remove-label")))
      .then(function () { chip.remove(); CV.ok(labelForm); })
      .catch(function (err) { CV.fail(labelForm, err); });
  });

  var commentForm = document.getElementById("comment-form");
  var comments = document.getElementById("comments");
  commentForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = commentForm.elements.text.value.trim();
    if (!text) { return; }
    CV.api("POST", base + "/comments", { text: text }).then(function (out) {
      var li = document.createElement("li");
      var meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = ((out && (out.author || out.user_name)) || "") + " · " +
        ((out && out.created_at) || new Date().toISOString()).slice(0, 19).replace("T", " ");
      li.appendChild(meta);
      li.appendChild(document.createElement("br"));
      li.appendChild(document.createTextNode((out && out.text) || text));
      comments.appendChild(li);
      commentForm.reset();
      CV.ok(commentForm);
    }).catch(function (err) { CV.fail(commentForm, err); });
  });

  var shareForm = document.getElementById("share-form");
  var shares = document.getElementById("shares");
  var urlBox = document.getElementById("share-url");
  var urlText = document.getElementById("share-url-text");
  shareForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var days = parseInt(shareForm.elements.days.value, 10);
    var expires = new Date(Date.now() + days * 86400000).toISOString();
    CV.api("POST", base + "/shares", { expires_in_hours: days * 24 })
      .then(function (out) {
        var url = (out && out.url) || (out && out.token ? "/s/" + out.token : "");
        if (url && url.charAt(0) === "/") { url = window.location.origin + url; }
        urlText.value = url;
        urlBox.hidden = false;
        var li = document.createElement("li");
        li.setAttribute("data-share", out && out.id);
        li.textContent = CV.t("rec.share_expires") + " " +
          String((out && out.expires_at) || expires).slice(0, 19).replace("T", " ") + " ";
        var revoke = document.createElement("button");
        revoke.type = "button";
        revoke.setAttribute("data-revoke", out && out.id);
        revoke.textContent = CV.t("rec.share_revoke");
        li.appendChild(revoke);
        shares.insertBefore(li, shares.firstChild);
        CV.ok(shareForm);
      }).catch(function (err) { CV.fail(shareForm, err); });
  });
  CV.on(shares, "button[data-revoke]", "click", function (ev, button) {
    CV.api("DELETE", base + "/shares/" + button.getAttribute("data-revoke")).then(function () {
      var note = document.createElement("span");
      note.textContent = CV.t("rec.share_revoked");
      button.replaceWith(note);
      CV.ok(shareForm);
    }).catch(function (err) { CV.fail(shareForm, err); });
  });
  document.getElementById("share-copy").addEventListener("click", function () {
    urlText.select();
    var done = function () { CV.toast(CV.t("rec.share_copied")); };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(urlText.value).then(done, function () {
        document.execCommand("copy"); done();
      });
    } else { document.execCommand("copy"); done(); }
  });
})();

/* ---------- public share page ---------- */
(function () {
  var root = document.getElementById("shared");
  if (!root) { return; }
  var base = "/api/v1/shared/" + encodeURIComponent(root.getAttribute("data-token"));
  var audio = document.getElementById("shared-audio");
  CV.api("GET", base).then(function (info) {
    var parts = [];
    if (info && info.started_at) { parts.push(String(info.started_at).slice(0, 19).replace("T", " ")); }
    if (info && info.duration_ms) { parts.push(Math.round(info.duration_ms / 1000) + " s"); }
    if (info && info.parties && info.parties.length) { parts.push(info.parties.join(" – ")); }
    document.getElementById("shared-info").textContent = parts.join(" · ");
    audio.src = (info && info.audio_url) || base + "/audio";
  }).catch(function () {
    audio.hidden = true;
    document.getElementById("shared-gone").hidden = false;
  });
})();

/* ---------- operator: tenants ---------- */
(function () {
  function list(value) {
    return value.split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  }
  var create = document.getElementById("tenant-form");
  if (create) {
    create.addEventListener("submit", function (ev) {
      ev.preventDefault();
      CV.api("POST", "/api/v1/tenants", {
        name: create.elements.name.value.trim(),
        domains: list(create.elements.domains.value),
        numbers: list(create.elements.numbers.value),
        blocks: list(create.elements.blocks.value)
      }).then(function (out) {
        window.location.assign("/operator/tenants/" + out.id);
      }).catch(function (err) { CV.fail(create, err); });
    });
  }
  var admin = document.getElementById("tenant-admin");
  if (!admin) { return; }
  var base = "/api/v1/tenants/" + admin.getAttribute("data-tenant");
  var edit = document.getElementById("tenant-edit");
  edit.addEventListener("submit", function (ev) {
    ev.preventDefault();
    CV.api("PATCH", base, {
      name: edit.elements.name.value.trim(),
      domains: list(edit.elements.domains.value),
      numbers: list(edit.elements.numbers.value),
      blocks: list(edit.elements.blocks.value),
      plan: edit.elements.plan.value.trim()
    }).then(function () { CV.ok(edit); }).catch(function (err) { CV.fail(edit, err); });
  });
  var userForm = document.getElementById("user-form");
  userForm.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = {
      name: userForm.elements.name.value.trim(),
      numbers: list(userForm.elements.numbers.value),
      aors: list(userForm.elements.aors.value),
      role: userForm.elements.role.value
    };
    var extension = userForm.elements.extension.value.trim();
    if (extension) { body.extension = extension; }
    CV.api("POST", base + "/users", body).then(function () { window.location.reload(); })
      .catch(function (err) { CV.fail(userForm, err); });
  });
  var toggle = document.getElementById("suspend-toggle");
  toggle.addEventListener("click", function () {
    var suspend = toggle.getAttribute("data-suspended") !== "true";
    CV.api("PATCH", base, { suspended: suspend }).then(function () { window.location.reload(); })
      .catch(function (err) { CV.fail(document.getElementById("suspend-msg"), err); });
  });
  var usage = document.getElementById("usage");
  CV.api("GET", base + "/usage").then(function (data) {
    usage.textContent = "";
    Object.keys(data || {}).forEach(function (key) {
      var dt = document.createElement("dt");
      dt.textContent = key.replace(/_/g, " ");
      var dd = document.createElement("dd");
      var value = data[key];
      if (value && typeof value === "object") {  // the retention tier
        dd.textContent = value.plan + ": " + value.retention_days + " d (" +
          value.retention_min_days + "–" + value.retention_max_days + ")";
      } else {
        dd.textContent = String(value);
      }
      usage.appendChild(dt);
      usage.appendChild(dd);
    });
  }).catch(function (err) {
    usage.textContent = err.message;
  });
})();
