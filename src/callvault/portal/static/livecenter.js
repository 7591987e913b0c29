/* LiveCenter (SPEC 7): follows the tenant's calls in progress over Server-Sent
   Events (no polling): a "snapshot" replaces the table, "call" adds or updates
   one row, "removed" drops one. Durations tick here, once a second. The record
   button posts record now / stop; [data-listen] and [data-coach] belong to
   listen.js and coach.js. Rows are built with DOM methods only (strict CSP). */
(function () {
  "use strict";
  var table = document.getElementById("live-calls");
  if (!table) { return; }
  var body = table.tBodies[0];
  var tenant = table.getAttribute("data-tenant");
  var canRecord = table.getAttribute("data-can-record") === "1";
  var coaching = table.getAttribute("data-coaching") === "1";
  var empty = document.getElementById("live-empty");
  var status = document.getElementById("live-connection");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function partyText(p) {
    var label = p.name || p.number || p.aor || "?";
    return p.name && p.number ? label + " (" + p.number + ")" : label;
  }

  function row(c) {
    var tr = el("tr", { "data-call": c.id, "data-state": c.state, "data-bridged": c.bridged ? "1" : "0" });
    var parties = el("td", { "class": "parties" });
    c.parties.forEach(function (p, i) {
      if (i) { parties.appendChild(document.createTextNode(" ↔ ")); }
      parties.appendChild(el("span", { "class": "party", "data-side": p.side }, partyText(p)));
    });
    tr.appendChild(parties);
    tr.appendChild(el("td", { "class": "duration", "data-since": c.answered_at || c.started_at }, "0:00"));
    tr.appendChild(el("td", { "class": "state" }, CV.t("live.state." + c.state)));
    var modes = Object.keys(c.modes).map(function (u) { return CV.t("mode." + c.modes[u]); });
    tr.appendChild(el("td", { "class": "mode" }, modes.join(", ")));
    var presence = el("td", { "class": "presence" });
    c.presences.forEach(function (p) {
      presence.appendChild(el("span", { "class": "presence", "data-kind": p.kind },
        CV.t("live.presence." + p.kind) + ": " + p.name));
    });
    tr.appendChild(presence);
    var actions = el("td", { "class": "actions" });
    if (canRecord) {
      actions.appendChild(el("button", { type: "button", "data-record": c.id, "data-on": c.record_now ? "false" : "true" },
        CV.t(c.record_now ? "live.record_stop" : "live.record")));
    }
    actions.appendChild(el("button", { type: "button", "data-listen": c.id }, CV.t("live.listen")));
    if (coaching && c.bridged) {
      actions.appendChild(el("button", { type: "button", "data-coach": c.id }, CV.t("live.coach")));
    }
    tr.appendChild(actions);
    return tr;
  }

  function find(id) {
    return Array.prototype.filter.call(body.rows, function (r) { return r.getAttribute("data-call") === id; })[0];
  }

  function changed() {
    empty.hidden = body.rows.length > 0;
    tick();
    document.dispatchEvent(new CustomEvent("livecenter:changed"));
  }

  function put(c) {
    var old = find(c.id);
    var fresh = row(c);
    if (old) {
      // keep the listen / coach buttons' own state (listen.js, coach.js mark them)
      ["[data-listen]", "[data-coach]"].forEach(function (sel) {
        var before = old.querySelector(sel), after = fresh.querySelector(sel);
        if (before && after) { after.parentNode.replaceChild(before, after); }
      });
      body.replaceChild(fresh, old);
    } else {
      body.appendChild(fresh);
    }
  }

  function duration(ms) {
    var s = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = h ? (m < 10 ? "0" : "") + m : String(m);
    return (h ? h + ":" : "") + mm + ":" + (sec < 10 ? "0" : "") + sec;
  }

  function tick() {
    var now = Date.now();
    Array.prototype.forEach.call(body.querySelectorAll("td.duration"), function (td) {
      var since = Date.parse(td.getAttribute("data-since"));
      if (!isNaN(since)) { td.textContent = duration(now - since); }
    });
  }

  function connected(state) {
    status.setAttribute("data-live", state);
    status.textContent = CV.t(state === "open" ? "live.connected" : "live.connecting");
  }

  var source = new EventSource(table.getAttribute("data-stream"));
  source.addEventListener("open", function () { connected("open"); });
  source.addEventListener("error", function () { connected("connecting"); });
  source.addEventListener("snapshot", function (ev) {
    var calls = JSON.parse(ev.data);
    var keep = {};
    calls.forEach(function (c) { keep[c.id] = true; put(c); });
    Array.prototype.slice.call(body.rows).forEach(function (r) {
      if (!keep[r.getAttribute("data-call")]) { body.removeChild(r); }
    });
    connected("open");
    changed();
  });
  source.addEventListener("call", function (ev) { put(JSON.parse(ev.data)); changed(); });
  source.addEventListener("removed", function (ev) {
    var old = find(JSON.parse(ev.data).id);
    if (old) { body.removeChild(old); }
    changed();
  });
  window.addEventListener("pagehide", function () { source.close(); });

  CV.on(table, "[data-record]", "click", function (ev, button) {
    button.disabled = true;
    var on = button.getAttribute("data-on") === "true";
    var url = "/api/v1/tenants/" + tenant + "/live/calls/" + button.getAttribute("data-record") + "/record";
    CV.api("POST", url, { on: on }).then(function (c) {
      put(c);
      changed();
      CV.ok(null, CV.t(on ? "live.recording_started" : "live.recording_stopped"));
    }).catch(function (err) {
      button.disabled = false;
      CV.fail(document.querySelector("[data-msg]"), err);
    });
  });

  tick();
  setInterval(tick, 1000);
})();
