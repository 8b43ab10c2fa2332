/*
 * Strata browser SDK, served by `strata collect` at /sdk.js. No dependencies.
 *
 *   <script src="https://collect.example.com/sdk.js"></script>
 *   <script>
 *     var strata = Strata.init({ key: "SITE_KEY", userId: "u000123", appVersion: "web-4.2" });
 *     strata.track("click", "c00001686", { strategy: "s3" });
 *   </script>
 *
 * Events queue in memory and are posted as a JSON array to /v1/events when `batchSize` are
 * waiting or every `flushInterval` ms. When the page is hidden or left, what is queued goes with
 * navigator.sendBeacon (which outlives the page). A 429 or 503 (or a network error) keeps the
 * batch and retries it after Retry-After, or with exponential backoff; a 400 drops it (the
 * answer says which events were bad, and retrying would not help). `sampleRate` keeps that share
 * of users (decided once per user id), so a sampled user's events are all kept.
 * See docs/collect.md.
 */
(function (root) {
  "use strict";

  function scriptOrigin() {
    var s = root.document && root.document.currentScript;
    if (s && s.src) { var a = root.document.createElement("a"); a.href = s.src; return a.protocol + "//" + a.host; }
    return root.location ? root.location.protocol + "//" + root.location.host : "";
  }

  function randomId() {
    if (root.crypto && root.crypto.randomUUID) return root.crypto.randomUUID();
    var s = "";
    for (var i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
    return s;
  }

  function anonymousId() {
    try {
      var id = root.localStorage.getItem("strata_uid");
      if (!id) { id = "anon-" + randomId(); root.localStorage.setItem("strata_uid", id); }
      return id;
    } catch (e) { return "anon-" + randomId(); }
  }

  // A stable number in [0, 1) for a user id, so sampling keeps or drops a user as a whole.
  function unitHash(text) {
    var h = 2166136261;
    for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    return h / 4294967296;
  }

  function Client(opts) {
    opts = opts || {};
    this.endpoint = (opts.endpoint || scriptOrigin() + "/v1/events") + (opts.key ? "?key=" + encodeURIComponent(opts.key) : "");
    this.batchSize = opts.batchSize || 20;
    this.flushInterval = opts.flushInterval || 2000;
    this.maxQueue = opts.maxQueue || 1000;
    this.maxBackoff = opts.maxBackoff || 60000;
    this.userId = opts.userId || anonymousId();
    this.device = { os: opts.os || (root.navigator && root.navigator.platform) || "web", app_ver: opts.appVersion || "web" };
    this.sampled = unitHash(this.userId) < (opts.sampleRate === undefined ? 1 : opts.sampleRate);
    this.queue = [];
    this.inFlight = false;
    this.backoff = 0;
    this.retryAt = 0;
    var self = this;
    this.timer = setInterval(function () { self.flush(); }, this.flushInterval);
    var leave = function () { self.beacon(); };
    if (root.addEventListener) {
      root.addEventListener("pagehide", leave);
      root.document && root.document.addEventListener("visibilitychange", function () {
        if (root.document.visibilityState === "hidden") leave();
      });
    }
  }

  /** Queues one event; `fields` may add strategy, duration_ms, or anything else. */
  Client.prototype.track = function (action, contentId, fields) {
    if (!this.sampled) return;
    var e = { event_id: randomId(), ts: Date.now(), action: action, content_id: String(contentId),
              user_id: this.userId, device: this.device, page: root.location ? root.location.pathname : undefined };
    if (fields) for (var k in fields) if (Object.prototype.hasOwnProperty.call(fields, k)) e[k] = fields[k];
    if (this.queue.length >= this.maxQueue) this.queue.shift(); // keep the newest
    this.queue.push(e);
    if (this.queue.length >= this.batchSize) this.flush();
  };

  /** Posts the oldest batch unless one is in flight or a retry is pending. */
  Client.prototype.flush = function () {
    if (this.inFlight || this.queue.length === 0 || Date.now() < this.retryAt) return;
    var batch = this.queue.splice(0, this.batchSize);
    var self = this;
    this.inFlight = true;
    var retry = function (afterMs) {
      self.queue = batch.concat(self.queue);
      self.backoff = Math.min(self.maxBackoff, self.backoff ? self.backoff * 2 : 1000);
      self.retryAt = Date.now() + (afterMs || self.backoff * (0.5 + Math.random() / 2));
    };
    fetch(this.endpoint, { method: "POST", body: JSON.stringify(batch), keepalive: true,
                           headers: { "Content-Type": "text/plain;charset=UTF-8" } })
      .then(function (r) {
        if (r.status === 429 || r.status === 503 || r.status >= 500) {
          var after = parseInt(r.headers.get("Retry-After") || "", 10);
          retry(after > 0 ? after * 1000 : 0);
        } else {
          self.backoff = 0;
          self.retryAt = 0;
        }
      }, function () { retry(0); })
      .then(function () { self.inFlight = false; });
  };

  /** Hands everything queued to the browser to send after the page is gone. */
  Client.prototype.beacon = function () {
    if (this.queue.length === 0 || !root.navigator || !root.navigator.sendBeacon) return;
    while (this.queue.length > 0) {
      var batch = this.queue.slice(0, this.batchSize);
      var ok = root.navigator.sendBeacon(this.endpoint, new Blob([JSON.stringify(batch)], { type: "text/plain" }));
      if (!ok) return; // the browser refused (size budget): keep the rest for fetch
      this.queue.splice(0, batch.length);
    }
  };

  root.Strata = { init: function (opts) { return new Client(opts); }, version: "1" };
})(typeof window !== "undefined" ? window : this);
