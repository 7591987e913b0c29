/* Settings › Recording › Announcements (B2BUA mode): the four options are
   PATCHed to /api/v1/tenants/{t}/recording-settings one by one; a chosen file
   is PUT as the body itself (the API takes no multipart) to
   /api/v1/tenants/{t}/announcements/{kind}, "use the default" DELETEs it; the
   page reloads to show what plays now. The API's message shows on refusal. */
"use strict";

(function () {
  var root = document.getElementById("announcements");
  if (!root || !window.CV) { return; }
  var CV = window.CV;
  var tenant = root.getAttribute("data-tenant");
  var base = "/api/v1/tenants/" + tenant;
  var promptMsg = document.getElementById("prompt-msg");

  root.querySelectorAll("input[data-option]").forEach(function (box) {
    box.addEventListener("change", function () {
      var body = {};
      body[box.getAttribute("data-option")] = box.checked;
      CV.api("PATCH", base + "/recording-settings", body)
        .then(function () { CV.ok(box); })
        .catch(function (err) { box.checked = !box.checked; CV.fail(box, err); });
    });
  });

  function csrf() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function upload(kind, file) {
    var url = base + "/announcements/" + kind + "?filename=" + encodeURIComponent(file.name);
    return fetch(url, {
      method: "PUT",
      credentials: "same-origin",
      headers: {
        "Accept": "application/json",
        "X-CSRF-Token": csrf(),
        "Content-Type": file.type || "application/octet-stream"
      },
      body: file
    }).then(function (response) {
      if (response.ok) { return null; }
      return response.json().catch(function () { return null; }).then(function (data) {
        var text = data && data.error && data.error.message;
        throw new Error(text || CV.t("common.error") + " (HTTP " + response.status + ")");
      });
    });
  }

  root.querySelectorAll("input[data-upload]").forEach(function (input) {
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      if (!file) { return; }
      input.disabled = true;
      upload(input.getAttribute("data-upload"), file)
        .then(function () { window.location.reload(); })
        .catch(function (err) { input.disabled = false; input.value = ""; CV.fail(promptMsg, err); });
    });
  });

  root.querySelectorAll("button[data-reset]").forEach(function (button) {
    button.addEventListener("click", function () {
      button.disabled = true;
      CV.api("DELETE", base + "/announcements/" + button.getAttribute("data-reset"))
        .then(function () { window.location.reload(); })
        .catch(function (err) { button.disabled = false; CV.fail(promptMsg, err); });
    });
  });
})();
