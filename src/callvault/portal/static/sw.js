/* callvault service worker (served from /sw.js, scope /): the installable web
   app of SPEC section 6 (Playback).

   - Installable: a fetch handler; the shell (CSS, JS, icons, manifest) is
     answered from the network and kept for offline use. Pages, the API and
     audio are never cached: they are private and must always be current.
   - Push (RFC 8030; the payload is decrypted by the browser, RFC 8291): shows
     "keep this call?" with Keep and Discard actions.
   - notificationclick: Keep/Discard POST {token, answer} to the payload's
     answer_url without opening the portal and without cookies (the token is
     the authority), then close the notification; a click on the notification
     itself opens the recording.
   - message {type: "answer", ...}: the same answer path, for the open app
     (and for tests, since a notification's action cannot be clicked
     headlessly).

   Loaded into a page (tests), it only defines self.CVSW: the handlers are
   registered on a ServiceWorkerGlobalScope alone. */
"use strict";

(function (scope) {
  var SHELL_CACHE = "callvault-shell-v1";
  var SHELL = [
    "/static/portal.css",
    "/static/app.css",
    "/static/portal.js",
    "/static/app.js",
    "/static/icons/icon-192.png",
    "/static/icons/icon-512.png",
    "/static/icons/maskable-192.png",
    "/static/icons/maskable-512.png",
    "/manifest.webmanifest"
  ];
  // the actions' words; the payload's language picks them (the worker has no page to ask)
  var WORDS = {
    nl: { keep: "Bewaren", discard: "Verwijderen", title: "Gesprek bewaren?" },
    de: { keep: "Behalten", discard: "Verwerfen", title: "Gespräch behalten?" },
    en: { keep: "Keep", discard: "Discard", title: "Keep this call?" }
  };
  var ANSWERS = { keep: true, discard: true };

  function words(lang) { return WORDS[lang] || WORDS.nl; }

  /* the notification for a push payload: {title, options}. The payload is
     callvault's JSON (playback/push); fields may sit at the top or in "data". */
  function notificationFromPush(payload) {
    var p = payload || {};
    var d = p.data || {};
    var w = words(p.lang || d.lang);
    var recordingId = d.recording_id || p.recording_id || "";
    // the payload's own words (the user's language, playback/ask.py), else the worker's
    var titles = {};
    (Array.isArray(p.actions) ? p.actions : []).forEach(function (a) {
      if (a && ANSWERS[a.action] && a.title) { titles[a.action] = String(a.title); }
    });
    var actions = [
      { action: "keep", title: titles.keep || w.keep },
      { action: "discard", title: titles.discard || w.discard }
    ];
    return {
      title: p.title || w.title,
      options: {
        body: p.body || "",
        tag: "recording-" + recordingId,
        icon: "/static/icons/icon-192.png",
        badge: "/static/icons/icon-192.png",
        requireInteraction: true,
        data: {
          recording_id: recordingId,
          token: d.token || p.token || "",
          answer_url: d.answer_url || p.answer_url || "/api/v1/playback/answer",
          url: d.url || p.url || (recordingId ? "/recordings/" + recordingId : "/"),
          lang: p.lang || d.lang || ""
        },
        actions: actions
      }
    };
  }

  /* only this origin's URLs: a payload must not make the worker post elsewhere */
  function sameOrigin(url) {
    try {
      return new URL(url, scope.location.href).origin === scope.location.origin;
    } catch (e) { return false; }
  }

  /* one answer: POST {token, answer} to answer_url without cookies. Resolves to
     {ok, status, message, recording_id, answer}; never rejects. */
  function answer(data, choice, fetchImpl) {
    var send = fetchImpl || scope.fetch.bind(scope);
    var d = data || {};
    var result = { ok: false, status: 0, message: "", recording_id: d.recording_id || "",
                   answer: choice };
    if (!ANSWERS[choice] || !d.token || !d.answer_url || !sameOrigin(d.answer_url)) {
      result.message = "invalid answer";
      return Promise.resolve(result);
    }
    return send(d.answer_url, {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ token: d.token, answer: choice })
    }).then(function (response) {
      result.status = response.status;
      result.ok = response.ok;
      return response.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        if (body && body.error && body.error.message) { result.message = body.error.message; }
        return result;
      });
    }).catch(function (err) {
      result.message = String((err && err.message) || err);
      return result;
    });
  }

  /* tell open portal windows, so that the home screen redraws the recording */
  function tellClients(result) {
    if (!scope.clients || !scope.clients.matchAll) { return Promise.resolve(); }
    return scope.clients.matchAll({ type: "window" }).then(function (windows) {
      windows.forEach(function (w) { w.postMessage({ type: "answered", result: result }); });
    });
  }

  /* after an action: close it; a refused answer (answered already, expired)
     replaces it with the server's message */
  function answerNotification(notification, choice) {
    var data = notification.data || {};
    return answer(data, choice).then(function (result) {
      notification.close();
      var shown = result.ok ? Promise.resolve() : scope.registration.showNotification(
        words(data.lang).title,
        { body: result.message || ("HTTP " + result.status), tag: notification.tag,
          data: data, icon: "/static/icons/icon-192.png" }
      );
      return Promise.all([shown, tellClients(result)]).then(function () { return result; });
    });
  }

  function isShell(url) {
    var u = new URL(url);
    if (u.origin !== scope.location.origin) { return false; }
    return SHELL.indexOf(u.pathname) >= 0 || u.pathname.indexOf("/static/icons/") === 0;
  }

  /* the shell: network first (a new release shows at once), the cache offline */
  function shellResponse(request) {
    return caches.open(SHELL_CACHE).then(function (cache) {
      return fetch(request).then(function (response) {
        if (response.ok) { cache.put(request, response.clone()); }
        return response;
      }).catch(function () {
        return cache.match(request).then(function (hit) { return hit || Response.error(); });
      });
    });
  }

  scope.CVSW = {
    notificationFromPush: notificationFromPush,
    answer: answer,
    isShell: isShell,
    words: words
  };

  var isWorker = typeof scope.ServiceWorkerGlobalScope !== "undefined" &&
    scope instanceof scope.ServiceWorkerGlobalScope;
  if (!isWorker) { return; }

  scope.addEventListener("install", function (event) {
    event.waitUntil(caches.open(SHELL_CACHE).then(function (cache) {
      // one missing file must not keep the app from installing
      return Promise.all(SHELL.map(function (url) {
        return cache.add(url).catch(function () { return null; });
      }));
    }).then(function () { return scope.skipWaiting(); }));
  });

  scope.addEventListener("activate", function (event) {
    event.waitUntil(caches.keys().then(function (names) {
      return Promise.all(names.filter(function (n) { return n !== SHELL_CACHE; })
        .map(function (n) { return caches.delete(n); }));
    }).then(function () { return scope.clients.claim(); }));
  });

  scope.addEventListener("fetch", function (event) {
    var request = event.request;
    if (request.method !== "GET" || !isShell(request.url)) { return; }  // the network's
    event.respondWith(shellResponse(request));
  });

  scope.addEventListener("push", function (event) {
    var payload = {};
    try { payload = event.data ? event.data.json() : {}; } catch (e) { payload = {}; }
    var n = notificationFromPush(payload);
    event.waitUntil(scope.registration.showNotification(n.title, n.options));
  });

  scope.addEventListener("notificationclick", function (event) {
    var notification = event.notification;
    if (ANSWERS[event.action]) {
      event.waitUntil(answerNotification(notification, event.action));
      return;
    }
    notification.close();
    var data = notification.data || {};
    var target = sameOrigin(data.url || "/") ? (data.url || "/") : "/";
    event.waitUntil(scope.clients.matchAll({ type: "window", includeUncontrolled: true })
      .then(function (windows) {
        for (var i = 0; i < windows.length; i++) {
          if (windows[i].navigate && windows[i].focus) {
            return windows[i].navigate(target).then(function (w) { return w && w.focus(); })
              .catch(function () { return scope.clients.openWindow(target); });
          }
        }
        return scope.clients.openWindow(target);
      }));
  });

  scope.addEventListener("message", function (event) {
    var msg = event.data || {};
    if (msg.type !== "answer") { return; }
    var reply = function (result) {
      if (event.ports && event.ports[0]) { event.ports[0].postMessage(result); }
      else if (event.source) { event.source.postMessage({ type: "answered", result: result }); }
      return result;
    };
    event.waitUntil(answer(msg, msg.answer).then(function (result) {
      return tellClients(result).then(function () { return reply(result); });
    }));
  });
})(self);
