/* callvault portal, Settings › Recording: the single recording key (issue 15).
   The German manual: "Legen Sie fest, mit welcher DTMF-Taste die Aufzeichnung
   gestartet und gestoppt werden soll (mit einem Klick auf die Taste öffnet sich
   die Auswahl)". A click on the key opens a keypad (1-9, *, 0, #); a click on a
   key saves it as the tenant's short code (PATCH, the same API and validation as
   the text field, which stays for * + digit). Needs portal.js (CV). */
"use strict";

(function () {
  var root = document.getElementById("settings");
  var toggle = document.getElementById("keypad-toggle");
  var pad = document.getElementById("keypad");
  var field = document.getElementById("short_code");
  if (!root || !toggle || !pad || !field || typeof CV === "undefined") { return; }
  var base = "/api/v1/tenants/" + root.getAttribute("data-tenant");
  var SINGLE = "0123456789*#";

  /* show the tenant's code: the key on the toggle and pressed on the pad when it is
     a single key, "choose" and nothing pressed when it is * + digit */
  function show(code) {
    var single = code.length === 1 && SINGLE.indexOf(code) >= 0 ? code : "";
    toggle.textContent = single || toggle.getAttribute("data-none");
    pad.querySelectorAll("button[data-key]").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-key") === single ? "true" : "false");
    });
  }

  function open(isOpen) {
    pad.hidden = !isOpen;
    toggle.setAttribute("aria-expanded", isOpen ? "true" : "false");
    if (isOpen) {
      var pressed = pad.querySelector('button[aria-pressed="true"]') || pad.querySelector("button");
      pressed.focus();
    }
  }

  toggle.addEventListener("click", function () { open(pad.hidden); });

  pad.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") { open(false); toggle.focus(); }
  });

  CV.on(pad, "button[data-key]", "click", function (ev, button) {
    var key = button.getAttribute("data-key");
    button.disabled = true;
    CV.api("PATCH", base + "/recording-settings", { short_code: key }).then(function (out) {
      field.value = out.short_code;
      show(out.short_code);
      open(false);
      toggle.focus();
      CV.ok(toggle);
    }).catch(function (err) { CV.fail(toggle, err); })
      .then(function () { button.disabled = false; });
  });

  /* the text field is saved by portal.js; the pad follows what was typed once it is a
     well-formed code (the server's answer, if it refuses, shows under the field) */
  field.addEventListener("change", function () {
    var code = field.value.trim();
    if (/^([0-9*#]|\*[0-9])$/.test(code)) { show(code); }
  });
})();
