/* LiveCenter: the coach button (SPEC 7, silent coaching). callvault calls the
   supervisor's own phone; answering it joins the call in silence, and the
   phone's keys switch the mode (1 customer, 2 whisper, 3 conference, 0 silent). */
"use strict";

(function () {
  var table = document.getElementById("live-calls");
  if (!table) { return; }
  var tenant = table.getAttribute("data-tenant");

  CV.on(table, "[data-coach]", "click", function (ev, button) {
    button.disabled = true;
    var url = "/api/v1/tenants/" + tenant + "/live/calls/" + button.getAttribute("data-coach") + "/coach";
    CV.api("POST", url, {}).then(function () {
      CV.ok(document.querySelector("[data-msg]"), CV.t("live.coach_calling"));
      setTimeout(function () { button.disabled = false; }, 5000);
    }).catch(function (err) {
      button.disabled = false;
      CV.fail(document.querySelector("[data-msg]"), err);
    });
  });
})();
