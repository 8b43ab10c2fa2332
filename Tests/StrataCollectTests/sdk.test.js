// The browser SDK (Sources/StrataCollect/Server/sdk.js) in node, with a stub window: batching,
// the request shape, Retry-After, sendBeacon on page hide, sampling. Run by SDKTests.
const fs = require("fs");
const assert = require("assert");
const sdkPath = process.argv[2];
let posts = [], beacons = [], now = 1795219200000, timers = [], answers = [];
const window = {
  location: { protocol: "https:", host: "shop.example", pathname: "/feed" },
  navigator: { platform: "TestOS", sendBeacon: (url, blob) => { beacons.push({ url, blob }); return true; } },
  localStorage: { m: {}, getItem(k) { return this.m[k] || null; }, setItem(k, v) { this.m[k] = v; } },
  crypto: { randomUUID: (() => { let n = 0; return () => "uuid-" + (++n); })() },
  listeners: {}, addEventListener(t, f) { this.listeners[t] = f; },
  document: { visibilityState: "visible", addEventListener() {}, createElement() { return {}; } },
};
global.window = window;
global.setInterval = (f, ms) => { timers.push(f); return timers.length; };
global.Blob = class { constructor(parts, opts) { this.text = parts.join(""); this.type = opts.type; } };
Date.now = () => now;
global.fetch = (url, init) => {
  posts.push({ url, body: JSON.parse(init.body), type: init.headers["Content-Type"] });
  const a = answers.shift() || { status: 202, headers: {} };
  return Promise.resolve({ status: a.status, headers: { get: (h) => a.headers[h] || null } });
};
new Function("window", fs.readFileSync(sdkPath, "utf8")).call(window, window);
(async () => {
  const s = window.Strata.init({ endpoint: "https://c.example/v1/events", key: "K1", userId: "u7", batchSize: 3, flushInterval: 1000 });
  s.track("click", "c00000001", { strategy: "s2" });
  s.track("expose", "c00000002");
  assert.equal(posts.length, 0, "below the batch size nothing is sent");
  answers.push({ status: 429, headers: { "Retry-After": "2" } });
  s.track("play", "c00000003", { duration_ms: 1200 });
  await new Promise((r) => setImmediate(r));
  assert.equal(posts.length, 1, "a full batch is sent at once");
  assert.equal(posts[0].url, "https://c.example/v1/events?key=K1");
  assert.equal(posts[0].type.indexOf("text/plain"), 0, "a simple request: no CORS preflight");
  const e = posts[0].body[0];
  assert.deepEqual([e.event_id, e.ts, e.action, e.content_id, e.user_id, e.strategy, e.page, e.device.os],
                   ["uuid-1", now, "click", "c00000001", "u7", "s2", "/feed", "TestOS"]);
  assert.equal(posts[0].body[2].duration_ms, 1200);
  // 429: the batch is kept and retried only after Retry-After.
  timers[0]();
  assert.equal(posts.length, 1, "no retry before Retry-After");
  now += 2500;
  timers[0]();
  await new Promise((r) => setImmediate(r));
  assert.equal(posts.length, 2, "retried after Retry-After");
  assert.deepEqual(posts[1].body.map((x) => x.event_id), ["uuid-1", "uuid-2", "uuid-3"], "the same batch, in order");
  // Page hidden: what is queued goes by sendBeacon.
  s.track("like", "c00000004");
  window.listeners.pagehide();
  assert.equal(beacons.length, 1);
  assert.equal(JSON.parse(beacons[0].blob.text)[0].action, "like");
  // Sampling keeps or drops a user as a whole.
  const none = window.Strata.init({ endpoint: "https://c.example/v1/events", userId: "u8", sampleRate: 0 });
  none.track("click", "c1"); window.listeners.pagehide();
  assert.equal(beacons.length, 1, "a user outside the sample sends nothing");
  console.log("sdk ok");
})().catch((e) => { console.error(e); process.exit(1); });
