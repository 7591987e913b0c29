/* Listening live (SPEC 7): the AudioWorklet that plays the call's PCM frames.

   listen.js hands over each WebSocket frame as it is (an ArrayBuffer:
   version u8, channels u8, samples u16, sequence u32, server ms u64, all
   little-endian, then int16 PCM, interleaved for two channels). The context
   runs at 8 kHz, the frames' rate, so the browser resamples to the speakers.

   The jitter buffer: playing starts once TARGET of audio is queued (80 ms).
   An underrun plays the last frame again, fading out (no click), and grows
   the target by one frame up to MAX_TARGET; a queue that grows past the
   target by more than SLACK loses its oldest frames, so latency stays
   bounded after the network catches up. A gap in the sequence (frames the
   server dropped for a slow connection) is bridged the same way as an underrun. */
"use strict";

var FRAME = 160;              // samples per 20 ms frame at 8 kHz
var TARGET = 4 * FRAME;       // 80 ms
var MAX_TARGET = 12 * FRAME;  // 240 ms
var SLACK = 6 * FRAME;        // beyond target + 120 ms the oldest audio goes
var HEADER = 16;

class ListenPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = [];          // [Float32Array left, Float32Array right] per frame
    this.queued = 0;          // samples in the queue
    this.offset = 0;          // samples of queue[0] already played
    this.target = TARGET;
    this.playing = false;
    this.last = null;         // the last frame played, for concealment
    this.fade = 0;            // concealment position in samples
    this.expected = -1;       // next sequence number
    this.stats = { frames: 0, underruns: 0, dropped: 0, gaps: 0 };
    var self = this;
    this.port.onmessage = function (event) { self.frame(event.data); };
  }

  frame(buffer) {
    if (!(buffer instanceof ArrayBuffer) || buffer.byteLength < HEADER) { return; }
    var view = new DataView(buffer);
    var channels = view.getUint8(1), samples = view.getUint16(2, true), seq = view.getUint32(4, true);
    if (channels < 1 || channels > 2 || buffer.byteLength < HEADER + 2 * samples * channels) { return; }
    if (this.expected >= 0 && seq !== this.expected) { this.stats.gaps += 1; }
    this.expected = (seq + 1) >>> 0;
    var pcm = new Int16Array(buffer, HEADER, samples * channels);
    var left = new Float32Array(samples), right = new Float32Array(samples);
    for (var i = 0; i < samples; i++) {
      left[i] = pcm[i * channels] / 32768;
      right[i] = pcm[i * channels + channels - 1] / 32768;
    }
    this.queue.push([left, right]);
    this.queued += samples;
    this.stats.frames += 1;
    while (this.queued - this.offset > this.target + SLACK && this.queue.length > 1) {
      this.queued -= this.queue.shift()[0].length;
      this.offset = 0;
      this.stats.dropped += 1;
    }
  }

  process(_inputs, outputs) {
    var out = outputs[0];
    var left = out[0], right = out[1] || out[0];
    if (!this.playing && this.queued - this.offset >= this.target) { this.playing = true; }
    for (var i = 0; i < left.length; i++) {
      if (this.playing && this.queue.length) {
        var head = this.queue[0];
        left[i] = head[0][this.offset];
        right[i] = head[1][this.offset];
        this.offset += 1;
        this.fade = 0;
        if (this.offset >= head[0].length) {
          this.last = head;
          this.queue.shift();
          this.queued -= head[0].length;
          this.offset = 0;
        }
      } else {
        if (this.playing) {     // underrun: wait for TARGET again, a larger one
          this.playing = false;
          this.stats.underruns += 1;
          this.target = Math.min(MAX_TARGET, this.target + FRAME);
        }
        this.conceal(left, right, i);
      }
    }
    return true;
  }

  conceal(left, right, i) {
    // the last frame again, fading to silence over one frame
    if (this.last && this.fade < FRAME) {
      var gain = 1 - this.fade / FRAME;
      left[i] = this.last[0][this.fade % this.last[0].length] * gain;
      right[i] = this.last[1][this.fade % this.last[1].length] * gain;
      this.fade += 1;
    } else {
      left[i] = 0;
      right[i] = 0;
    }
  }
}

registerProcessor("callvault-listen", ListenPlayer);
