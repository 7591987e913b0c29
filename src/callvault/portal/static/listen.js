/* Listening live (SPEC 7, LiveCenter's loudspeaker button): a [data-listen]
   button (its value the call's id) opens the call's WebSocket
   (/api/v1/tenants/{t}/live/calls/{id}/listen, the session cookie) and plays
   its 20 ms PCM frames through an AudioWorklet (listen-worklet.js, which keeps
   the jitter buffer). One call at a time; the same button stops. Which
   channels are heard is the server's choice (the tenant's channel setting).

   Nothing inline (strict CSP): the worklet is a file of this origin. The page
   is told of a started player with a "listen:started" event on document
   ({context, node, call}), and of its end with "listen:stopped". */
(function () {
  "use strict";
  var active = null;   // {call, button, socket, context, node}
  var t = window.CV ? CV.t : function (key) { return key; };

  function tenantOf(button) {
    var table = document.getElementById("live-calls");
    return button.getAttribute("data-tenant") || (table && table.getAttribute("data-tenant"));
  }

  function socketUrl(tenant, call) {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + location.host + "/api/v1/tenants/" + encodeURIComponent(tenant) +
      "/live/calls/" + encodeURIComponent(call) + "/listen";
  }

  function mark(button, on) {
    if (!button) { return; }
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = t(on ? "live.listen_stop" : "live.listen");
  }

  function message(text) {
    var where = document.querySelector("[data-msg]");
    if (where) { where.textContent = text; }
  }

  function stop(reason) {
    var player = active;
    if (!player) { return; }
    active = null;
    try { player.socket.close(1000); } catch (e) { /* already closed */ }
    if (player.node) { player.node.disconnect(); }
    player.context.close();
    mark(currentButton(player.call) || player.button, false);
    document.dispatchEvent(new CustomEvent("listen:stopped", { detail: { call: player.call, reason: reason } }));
  }

  function currentButton(call) {
    // LiveCenter rebuilds rows; find the button of the call now on the page
    return Array.prototype.filter.call(document.querySelectorAll("[data-listen]"), function (b) {
      return b.getAttribute("data-listen") === call;
    })[0];
  }

  function start(button) {
    var call = button.getAttribute("data-listen");
    var context = new AudioContext({ sampleRate: 8000, latencyHint: "interactive" });
    var player = { call: call, button: button, socket: null, context: context, node: null };
    active = player;
    mark(button, true);
    context.audioWorklet.addModule("/static/listen-worklet.js").then(function () {
      if (active !== player) { return; }
      var node = new AudioWorkletNode(context, "callvault-listen",
        { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [2] });
      node.connect(context.destination);
      player.node = node;
      var socket = new WebSocket(socketUrl(tenantOf(button), call));
      socket.binaryType = "arraybuffer";
      player.socket = socket;
      socket.onmessage = function (event) {
        if (typeof event.data === "string") { return; }  // the stream's description
        node.port.postMessage(event.data, [event.data]);
      };
      socket.onclose = function (event) {
        if (active !== player) { return; }
        if (event.code !== 1000) { message(t("live.listen_failed")); }
        stop(event.code === 1000 ? "ended" : "failed");
      };
      context.resume();
      document.dispatchEvent(new CustomEvent("listen:started", { detail: { context: context, node: node, call: call } }));
    }).catch(function () {
      message(t("live.listen_failed"));
      stop("failed");
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-listen]") : null;
    if (!button) { return; }
    event.preventDefault();
    var call = button.getAttribute("data-listen");
    var again = active && active.call === call;
    stop("stopped");
    if (!again) { start(button); }
  });

  window.addEventListener("pagehide", function () { stop("left"); });
})();
