/* The waveform of one recording: the MP3 is fetched through the page's play
   link (a Range request; the link was audited as a play when the page was
   made), decoded by Web Audio and drawn as two
   lanes, the user (left channel) above the other party (right channel).
   Segment boundaries and DTMF keys are marked on the timeline; a click seeks. */
"use strict";

(function () {
  var root = document.getElementById("recording");
  var canvas = document.getElementById("waveform");
  var audio = document.getElementById("rec-audio");
  if (!root || !canvas || !audio) { return; }
  var timeline = JSON.parse(document.getElementById("timeline").textContent);
  var ctx = canvas.getContext("2d");
  var peaks = null;       // [[min,max] per pixel] per channel
  var durationS = (timeline.duration_ms || 0) / 1000;
  var COLORS = ["#0f6e8c", "#b4531f"];

  function fit() {
    var width = Math.max(300, Math.floor(canvas.parentElement.clientWidth || 1000));
    if (canvas.width !== width) { canvas.width = width; }
  }

  function computePeaks(buffer) {
    var width = canvas.width;
    var out = [];
    for (var ch = 0; ch < Math.min(2, buffer.numberOfChannels); ch++) {
      var data = buffer.getChannelData(ch);
      var step = Math.max(1, Math.floor(data.length / width));
      var lane = [];
      for (var x = 0; x < width; x++) {
        var lo = 1, hi = -1;
        var start = x * step, end = Math.min(data.length, start + step);
        for (var i = start; i < end; i++) {
          var v = data[i];
          if (v < lo) { lo = v; }
          if (v > hi) { hi = v; }
        }
        lane.push(end > start ? [lo, hi] : [0, 0]);
      }
      out.push(lane);
    }
    return out;
  }

  function xOf(seconds) { return durationS > 0 ? (seconds / durationS) * canvas.width : 0; }

  function draw() {
    var w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#f6f8f9";
    ctx.fillRect(0, 0, w, h);
    var lanes = peaks ? peaks.length : Math.max(1, Math.min(2, timeline.channels || 1));
    var laneH = (h - 16) / lanes;
    for (var ch = 0; ch < lanes; ch++) {
      var mid = ch * laneH + laneH / 2;
      ctx.strokeStyle = "#d5dde1";
      ctx.beginPath(); ctx.moveTo(0, mid); ctx.lineTo(w, mid); ctx.stroke();
      if (!peaks) { continue; }
      ctx.fillStyle = COLORS[ch % COLORS.length];
      var lane = peaks[ch];
      for (var x = 0; x < lane.length; x++) {
        var top = mid - lane[x][1] * (laneH / 2 - 2);
        var bottom = mid - lane[x][0] * (laneH / 2 - 2);
        ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
      }
    }
    // joins between segments (pauses cut out of the file)
    ctx.strokeStyle = "#6b7b83";
    ctx.setLineDash([4, 3]);
    (timeline.segments || []).forEach(function (s, i) {
      if (i === 0) { return; }
      var x = xOf(s.file_start_ms / 1000);
      ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, h - 16); ctx.stroke();
    });
    ctx.setLineDash([]);
    // DTMF keys under the lane of the stream that sent them
    ctx.font = "11px sans-serif";
    (timeline.dtmf || []).forEach(function (d) {
      var x = xOf(d.at_ms / 1000);
      ctx.fillStyle = "#7a1f5c";
      ctx.fillRect(x, h - 16, 1, 16);
      ctx.fillText(d.digit, x + 2, h - 4);
    });
    // playhead
    if (durationS > 0) {
      var px = xOf(audio.currentTime || 0);
      ctx.fillStyle = "#d0021b";
      ctx.fillRect(px, 0, 2, h);
    }
  }

  function tick() {
    draw();
    if (!audio.paused) { window.requestAnimationFrame(tick); }
  }

  canvas.addEventListener("click", function (ev) {
    var rect = canvas.getBoundingClientRect();
    var fraction = (ev.clientX - rect.left) / rect.width;
    var total = isFinite(audio.duration) && audio.duration > 0 ? audio.duration : durationS;
    audio.currentTime = Math.max(0, Math.min(total, fraction * total));
    draw();
  });
  audio.addEventListener("play", tick);
  audio.addEventListener("seeked", draw);
  audio.addEventListener("loadedmetadata", function () {
    if (isFinite(audio.duration) && audio.duration > 0) { durationS = audio.duration; }
    draw();
  });
  window.addEventListener("resize", function () {
    fit();
    draw();
  });

  fit();
  draw();
  fetch(root.getAttribute("data-audio"), { credentials: "same-origin", headers: { Range: "bytes=0-" } })
    .then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.arrayBuffer();
    })
    .then(function (bytes) {
      var Context = window.AudioContext || window.webkitAudioContext;
      var context = new Context();
      return new Promise(function (resolve, reject) {
        context.decodeAudioData(bytes, resolve, reject);
      }).then(function (buffer) {
        if (context.close) { context.close(); }
        return buffer;
      });
    })
    .then(function (buffer) {
      if (!durationS) { durationS = buffer.duration; }
      peaks = computePeaks(buffer);
      canvas.setAttribute("data-drawn", String(peaks.length));
      draw();
    })
    .catch(function (err) {
      canvas.setAttribute("data-error", String(err && err.message));
    });
})();
