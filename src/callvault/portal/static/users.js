/* callvault portal: Users (issue 15). The profile's Call recording choice goes
   through the same recording-list API as Settings › Recording (plus button,
   mode menu, cross); the CSV import sends the chosen file as text/csv and
   lists the lines the server refused. Needs portal.js (CV). */
"use strict";

/* ---------- a user's profile: Call recording dropdown and Save ---------- */
(function () {
  var form = document.getElementById("recording-choice");
  var profile = document.getElementById("profile");
  if (!form || !profile) { return; }
  var base = "/api/v1/tenants/" + profile.getAttribute("data-tenant");
  var userId = parseInt(profile.getAttribute("data-user"), 10);
  var select = document.getElementById("recording-mode");
  var button = document.getElementById("save-recording");

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var listed = form.getAttribute("data-listed") === "true";
    var choice = select.value;
    var done;
    if (!choice) {
      /* "not on the recording list": the cross */
      done = listed ? CV.api("DELETE", base + "/recording-list/" + userId) : Promise.resolve(null);
    } else if (listed) {
      /* the mode menu of the recording list */
      done = CV.api("PUT", base + "/recording-list/" + userId, { mode: choice });
    } else {
      /* the plus button, with the chosen mode */
      done = CV.api("POST", base + "/recording-list", { user_id: userId, mode: choice });
    }
    button.disabled = true;
    done.then(function () {
      form.setAttribute("data-listed", choice ? "true" : "false");
      form.setAttribute("data-mode", choice);
      CV.ok(button);
    }).catch(function (err) {
      select.value = form.getAttribute("data-mode") || "";
      CV.fail(button, err);
    }).then(function () { button.disabled = false; });
  });
})();

/* ---------- the users list: CSV import ---------- */
(function () {
  var section = document.getElementById("users-csv");
  var form = document.getElementById("csv-import");
  if (!section || !form) { return; }
  var url = "/api/v1/tenants/" + section.getAttribute("data-tenant") + "/users.csv";
  var input = document.getElementById("csv-file");
  var msg = document.getElementById("csv-msg");
  var table = document.getElementById("csv-errors");
  var button = document.getElementById("csv-submit");

  function showLines(lines) {
    var body = table.querySelector("tbody");
    body.textContent = "";
    (lines || []).forEach(function (e) {
      var row = document.createElement("tr");
      row.setAttribute("data-line", String(e.line));
      var line = document.createElement("td");
      line.textContent = String(e.line);
      var reason = document.createElement("td");
      reason.textContent = e.reason;
      row.appendChild(line);
      row.appendChild(reason);
      body.appendChild(row);
    });
    table.hidden = !lines || lines.length === 0;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var file = input.files && input.files[0];
    showLines([]);
    if (!file) { CV.say(msg, CV.t("users.csv_choose"), true); return; }
    button.disabled = true;
    CV.say(msg, CV.t("common.loading"), false);
    file.arrayBuffer().then(function (data) {
      var meta = document.querySelector('meta[name="csrf-token"]');
      return fetch(url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Accept": "application/json",
          "Content-Type": "text/csv",
          "X-CSRF-Token": meta ? meta.getAttribute("content") : ""
        },
        body: data
      });
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (out) {
        if (response.ok) {
          var text = CV.t("users.csv_done")
            .replace("{created}", out.created).replace("{updated}", out.updated)
            .replace("{unchanged}", out.unchanged);
          CV.say(msg, text, false);
          msg.setAttribute("data-result", "imported");
          setTimeout(function () { window.location.reload(); }, 1500);
          return;
        }
        var error = (out && out.error) || {};
        msg.setAttribute("data-result", "refused");
        CV.say(msg, error.lines ? CV.t("users.csv_refused") : (error.message ||
          CV.t("common.error") + " (HTTP " + response.status + ")"), true);
        showLines(error.lines);
      });
    }).catch(function (err) {
      CV.say(msg, err.message || CV.t("common.error"), true);
    }).then(function () { button.disabled = false; });
  });
})();
