/* Bulk download (SPEC 5): the Reports form asks for an export through the JSON API
   and opens its page; an export's page reloads itself while the export is made. */
(function () {
  "use strict";
  var form = document.getElementById("bulk-download-form");
  if (form) {
    var box = document.getElementById("bulk-download");
    var tenant = box.getAttribute("data-tenant");
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var body = { month: form.elements.month.value.trim() };
      var users = form.querySelector("#bulk-users");
      if (users) {
        var chosen = Array.prototype.filter.call(users.options, function (o) { return o.selected; })
          .map(function (o) { return parseInt(o.value, 10); });
        if (chosen.length) { body.user_ids = chosen; }
      }
      var button = form.querySelector("#bulk-start");
      button.disabled = true;
      CV.api("POST", "/api/v1/tenants/" + tenant + "/exports", body).then(function (out) {
        window.location.assign(out.page_url);
      }).catch(function (err) {
        button.disabled = false;
        CV.fail(form.querySelector("[data-msg]"), err);
      });
    });
  }
  var page = document.getElementById("export");
  if (page) {
    var state = page.getAttribute("data-state");
    var mail = document.getElementById("export-mail");
    var pending = mail && ["pending", "retrying"].indexOf(mail.getAttribute("data-mail")) >= 0;
    if (state === "queued" || state === "running" || pending) {
      setTimeout(function () { window.location.reload(); }, 2000);
    }
  }
})();
