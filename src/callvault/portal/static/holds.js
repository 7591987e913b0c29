/* Settings › Recording: place and lift legal holds through the JSON API
   (/api/v1/tenants/{t}/legal-holds); the page reloads to show the result. */
"use strict";

(function () {
  var root = document.getElementById("legal-holds");
  if (!root || !window.CV) { return; }
  var base = "/api/v1/tenants/" + root.getAttribute("data-tenant") + "/legal-holds";
  var msg = root.querySelector("[data-msg]");
  function fail(err) { msg.textContent = err.message; msg.hidden = false; msg.className = "msg error"; }
  var form = document.getElementById("hold-form");
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var scope = form.elements.scope.value;
    var body = { scope: scope, reason: form.elements.reason.value.trim() };
    if (scope === "user") { body.user_id = parseInt(form.elements.user_id.value, 10) || null; }
    if (scope === "recording") { body.recording_id = form.elements.recording_id.value.trim(); }
    window.CV.api("POST", base, body).then(function () { window.location.reload(); }, fail);
  });
  root.addEventListener("click", function (ev) {
    var id = ev.target.getAttribute && ev.target.getAttribute("data-lift");
    if (!id) { return; }
    var reason = window.prompt(ev.target.textContent);
    if (!reason) { return; }
    window.CV.api("POST", base + "/" + id + "/lift", { reason: reason })
      .then(function () { window.location.reload(); }, fail);
  });
})();
