import Foundation
/// The big-screen page: one self-contained document (inline CSS, inline JS, hand-written SVG
/// charts); nothing is fetched but this server's own feeds.
enum DashboardPage {
    /// The page with the feeds' current results (`{"feed": table|null, …}`) inlined; `<` is
    /// escaped so no string in the data can close the script element.
    static func render(initial: String) -> String {
        html.replacingOccurrences(of: "/*STRATA_INITIAL*/null", with: initial.replacingOccurrences(of: "<", with: "\\u003c"))
    }

    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Strata · live</title>
<style>
  :root { --bg:#0b0f17; --panel:#121826; --line:#1f2a3d; --text:#e6edf7; --dim:#7f8ba3;
          --accent:#4cc2ff; --accent2:#ffb547; --accent3:#7ee787; --bad:#ff5d5d; }
  * { box-sizing: border-box; }
  html, body { margin:0; background:var(--bg); color:var(--text);
               font-family: "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
  body { padding: 18px 24px; }
  header { display:flex; align-items:baseline; justify-content:space-between; margin-bottom:14px; }
  h1 { font-size:28px; margin:0; letter-spacing:1px; }
  h1 span { color:var(--dim); font-weight:normal; font-size:20px; margin-left:12px; }
  .fresh { font-size:22px; }
  .fresh b { font-size:28px; }
  .lag { color:var(--dim); font-size:18px; margin-left:18px; }
  .lag b { color:var(--text); }
  .dot { display:inline-block; width:14px; height:14px; border-radius:7px; background:var(--dim); margin-right:8px; }
  .ok { background:var(--accent3); } .warn { background:var(--accent2); } .bad { background:var(--bad); }
  .nums { display:grid; grid-template-columns:repeat(6, 1fr); gap:14px; margin-bottom:14px; }
  .card, .panel { background:var(--panel); border:1px solid var(--line); border-radius:10px; }
  .card { padding:14px 18px; }
  .card .label { color:var(--dim); font-size:16px; text-transform:uppercase; letter-spacing:1px; }
  .card .num { font-size:52px; font-weight:bold; line-height:1.15; font-variant-numeric: tabular-nums; white-space:nowrap; }
  /* After .card .num, which it overrides (same specificity): the hour row is the quieter one. */
  .hour .num { font-size:34px; color:#b9c6dc; }
  .card .sub { color:var(--dim); font-size:14px; }
  .grid { display:grid; grid-template-columns: 1.6fr 1fr 1fr; gap:14px; }
  .panel { padding:12px 16px; min-height:120px; }
  .panel h2 { font-size:16px; color:var(--dim); text-transform:uppercase; letter-spacing:1px; margin:0 0 8px 0; font-weight:normal; }
  .wide { grid-column: span 2; }
  table { width:100%; border-collapse:collapse; font-size:17px; }
  td { padding:3px 6px; border-bottom:1px solid var(--line); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; max-width:260px; }
  td.n { text-align:right; font-variant-numeric: tabular-nums; color:var(--accent); font-weight:bold; }
  td.m { color:var(--dim); font-size:14px; }
  .empty { color:var(--dim); font-style:italic; padding:10px 0; }
  svg text { fill:var(--dim); font-size:13px; }
  .legend span { margin-right:16px; font-size:14px; color:var(--dim); }
  .legend i { display:inline-block; width:12px; height:4px; margin-right:6px; vertical-align:middle; }
  footer { margin-top:10px; color:var(--dim); font-size:13px; }
</style>
</head>
<body>
<header>
  <h1>STRATA <span>live · dws.content · <span id="window">waiting for data</span></span></h1>
  <div class="fresh"><span id="fresh-dot" class="dot"></span>newest row <b id="freshness">—</b>
    <span class="lag" id="lag"></span></div>
</header>
<section class="nums">
  <div class="card"><div class="label">Exposes</div><div class="num" id="v-exposes">—</div><div class="sub">this minute</div></div>
  <div class="card"><div class="label">Clicks</div><div class="num" id="v-clicks">—</div><div class="sub">this minute</div></div>
  <div class="card"><div class="label">CTR</div><div class="num" id="v-ctr">—</div><div class="sub">clicks / exposes</div></div>
  <div class="card"><div class="label">Plays</div><div class="num" id="v-plays">—</div><div class="sub">this minute</div></div>
  <div class="card"><div class="label">Play time</div><div class="num" id="v-play_ms">—</div><div class="sub">this minute</div></div>
  <div class="card"><div class="label">UV</div><div class="num" id="v-uv">—</div><div class="sub">sum of per-content UV</div></div>
</section>
<section class="nums hour">
  <div class="card"><div class="label">Exposes</div><div class="num" id="h-exposes">—</div><div class="sub">last hour</div></div>
  <div class="card"><div class="label">Clicks</div><div class="num" id="h-clicks">—</div><div class="sub">last hour</div></div>
  <div class="card"><div class="label">CTR</div><div class="num" id="h-ctr">—</div><div class="sub">last hour</div></div>
  <div class="card"><div class="label">Plays</div><div class="num" id="h-plays">—</div><div class="sub">last hour</div></div>
  <div class="card"><div class="label">Play time</div><div class="num" id="h-play_ms">—</div><div class="sub">last hour</div></div>
  <div class="card"><div class="label">UV</div><div class="num" id="h-uv">—</div><div class="sub">distinct users, last hour</div></div>
</section>
<section class="grid">
  <div class="panel wide"><h2>Per-minute trend · last 60 minutes</h2>
    <div class="legend"><span><i style="background:#2b4466"></i>exposes</span><span><i style="background:var(--accent)"></i>clicks</span><span><i style="background:var(--accent2)"></i>plays</span><span id="trend-max"></span></div>
    <svg id="trend" viewBox="0 0 1000 240" width="100%" height="240" preserveAspectRatio="none"></svg></div>
  <div class="panel"><h2>Categories · last 10 minutes (plays)</h2><div id="categories"><div class="empty">no data yet</div></div></div>
  <div class="panel"><h2>Top content by clicks · last 10 minutes</h2><div id="top_clicks"><div class="empty">no data yet</div></div></div>
  <div class="panel"><h2>Top content by reports · last 10 minutes</h2><div id="top_reports"><div class="empty">no data yet</div></div></div>
  <div class="panel"><h2>Feeds</h2><div id="feeds"><div class="empty">loading</div></div></div>
</section>
<div id="others"></div>
<footer>Each panel is a named query in sql/dashboard/, streamed from /api/feeds/&lt;name&gt;.</footer>
<script>
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token");
  var q = token ? "?token=" + encodeURIComponent(token) : "";
  var state = {}, status = {}, newest = null;
  function $(id) { return document.getElementById(id); }
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
  function int(v) { return v == null ? "—" : Number(v).toLocaleString("en-US"); }
  function setNum(id, value, text) {
    var el = $(id); if (!el) return;
    el.setAttribute("data-value", value == null ? "" : String(value));
    el.textContent = text;
  }
  function hm(ms) {
    if (ms == null) return "—";
    var h = ms / 3600000;
    return h >= 1 ? h.toFixed(1) + " h" : (ms / 60000).toFixed(1) + " min";
  }
  function clock(ms) { return new Date(ms).toISOString().substr(11, 5) + "Z"; }
  function age(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    return s < 120 ? s + " s" : s < 7200 ? Math.round(s / 60) + " min" : Math.round(s / 3600) + " h";
  }
  function table(rows, cols) {
    if (!rows || rows.length === 0) return '<div class="empty">no rows</div>';
    var h = "<table>";
    rows.forEach(function (r) {
      h += "<tr>";
      cols.forEach(function (c) {
        var v = r[c[0]];
        h += '<td class="' + (c[1] || "") + '">' + esc(c[1] === "n" ? int(v) : (v == null ? "" : v)) + "</td>";
      });
      h += "</tr>";
    });
    return h + "</table>";
  }
  var render = {
    totals: function (t) {
      var r = t.rows[0] || {};
      setNum("v-exposes", r.exposes, int(r.exposes));
      setNum("v-clicks", r.clicks, int(r.clicks));
      setNum("v-ctr", r.ctr, r.ctr == null ? "—" : (r.ctr * 100).toFixed(2) + "%");
      setNum("v-plays", r.plays, int(r.plays));
      setNum("v-play_ms", r.play_ms, hm(r.play_ms));
      setNum("v-uv", r.uv, int(r.uv));
      if (r.newest_emitted_at != null) newest = r.newest_emitted_at;
      if (t.window_start != null) $("window").textContent = "minute " + clock(t.window_start) + (t.final ? " (final)" : "");
      tickFresh();
    },
    hour: function (t) {
      var r = t.rows[0] || {};
      setNum("h-exposes", r.exposes, int(r.exposes));
      setNum("h-clicks", r.clicks, int(r.clicks));
      setNum("h-ctr", r.ctr, r.ctr == null ? "—" : (r.ctr * 100).toFixed(2) + "%");
      setNum("h-plays", r.plays, int(r.plays));
      setNum("h-play_ms", r.play_ms, hm(r.play_ms));
    },
    hour_uv: function (t) {
      var r = t.rows[0] || {};
      setNum("h-uv", r.uv, int(r.uv));
    },
    trend: function (t) {
      var svg = $("trend"), rows = t.rows, W = 1000, H = 240, pad = 22;
      if (!rows.length) { svg.innerHTML = ""; return; }
      var end = t.window_end != null ? t.window_end : rows[rows.length - 1].minute + 60000;
      var start = end - 3600000;
      function x(m) { return ((m - start) / 3600000) * W; }
      function mx(k) { return Math.max.apply(null, rows.map(function (r) { return r[k] || 0; }).concat([1])); }
      var me = mx("exposes"), mc = mx("clicks"), mp = mx("plays");
      function y(v, m) { return H - pad - (v / m) * (H - 2 * pad); }
      var s = "", bw = W / 60 - 2;
      rows.forEach(function (r) {
        s += '<rect x="' + x(r.minute).toFixed(1) + '" y="' + y(r.exposes || 0, me).toFixed(1) + '" width="' + bw.toFixed(1) +
             '" height="' + (H - pad - y(r.exposes || 0, me)).toFixed(1) + '" fill="#2b4466"/>';
      });
      function line(k, m, color) {
        var pts = rows.map(function (r) { return (x(r.minute) + bw / 2).toFixed(1) + "," + y(r[k] || 0, m).toFixed(1); }).join(" ");
        return '<polyline points="' + pts + '" fill="none" stroke="' + color + '" stroke-width="3"/>';
      }
      s += line("clicks", mc, "#4cc2ff") + line("plays", mp, "#ffb547");
      for (var i = 0; i <= 6; i++) {
        var m = start + i * 600000;
        s += '<text x="' + Math.min(W - 50, x(m) + 2).toFixed(0) + '" y="' + (H - 4) + '">' + clock(m) + "</text>";
      }
      svg.innerHTML = s;
      $("trend-max").textContent = "peaks: " + int(me) + " exposes · " + int(mc) + " clicks · " + int(mp) + " plays / min";
    },
    top_clicks: function (t) { $("top_clicks").innerHTML = table(t.rows, [["title"], ["category", "m"], ["author", "m"], ["clicks", "n"]]); },
    top_reports: function (t) { $("top_reports").innerHTML = table(t.rows, [["title"], ["category", "m"], ["author", "m"], ["reports", "n"]]); },
    categories: function (t) {
      var rows = t.rows;
      if (!rows.length) { $("categories").innerHTML = '<div class="empty">no rows</div>'; return; }
      var m = Math.max.apply(null, rows.map(function (r) { return r.plays || 0; }).concat([1]));
      var h = 26, s = '<svg viewBox="0 0 400 ' + rows.length * h + '" width="100%" height="' + rows.length * h + '">';
      rows.forEach(function (r, i) {
        var w = ((r.plays || 0) / m) * 230;
        s += '<text x="0" y="' + (i * h + 18) + '" style="fill:#e6edf7;font-size:15px">' + esc(r.category) + "</text>" +
             '<rect x="110" y="' + (i * h + 5) + '" width="' + w.toFixed(1) + '" height="16" fill="#4cc2ff" rx="3"/>' +
             '<text x="' + (116 + w).toFixed(1) + '" y="' + (i * h + 18) + '">' + int(r.plays) + "</text>";
      });
      $("categories").innerHTML = s + "</svg>";
    }
  };
  function generic(name, t) {
    var el = $("feed-" + name);
    if (!el) {
      el = document.createElement("div"); el.className = "panel"; el.id = "feed-" + name; el.style.marginTop = "14px";
      $("others").appendChild(el);
    }
    el.innerHTML = "<h2>" + esc(name) + "</h2>" + table(t.rows, t.columns.map(function (c) { return [c]; }));
  }
  function drawFeeds() {
    var h = "<table>";
    Object.keys(status).forEach(function (n) { h += "<tr><td>" + esc(n) + '</td><td class="m">' + esc(status[n]) + "</td></tr>"; });
    $("feeds").innerHTML = h + "</table>";
  }
  function tickFresh() {
    var dot = $("fresh-dot");
    if (newest == null) { $("freshness").textContent = "—"; dot.className = "dot"; return; }
    var a = Date.now() - newest;
    $("freshness").textContent = age(a) + " ago";
    $("freshness").setAttribute("data-emitted-at", String(newest));
    dot.className = "dot " + (a < 15000 ? "ok" : a < 120000 ? "warn" : "bad");
  }
  setInterval(tickFresh, 1000);
  // The jobs' lag: records their consumer groups have not committed yet.
  function pollStatus() {
    fetch("/api/status" + q).then(function (r) { return r.json(); }).then(function (st) {
      var h = "";
      (st.jobs || []).forEach(function (j) {
        h += " " + esc(j.job) + ' lag <b data-lag="' + (j.lag == null ? "" : j.lag) + '">' + (j.lag == null ? "?" : int(j.lag)) + "</b>";
      });
      $("lag").innerHTML = h;
    }).catch(function () { $("lag").textContent = "status unavailable"; });
  }
  pollStatus();
  setInterval(pollStatus, 5000);
  var initial = /*STRATA_INITIAL*/null;
  function show(name, t) {
    state[name] = t;
    status[name] = "live · " + t.rows.length + " rows"; drawFeeds();
    (render[name] || function (t) { generic(name, t); })(t);
  }
  if (initial) Object.keys(initial).forEach(function (n) { if (initial[n]) show(n, initial[n]); });
  function subscribe(name) {
    if (!state[name]) { status[name] = "connecting"; drawFeeds(); }
    var es = new EventSource("/api/feeds/" + encodeURIComponent(name) + q);
    es.addEventListener("result", function (e) {
      show(name, JSON.parse(e.data));
    });
    es.addEventListener("error", function (e) {
      if (e.data) { try { status[name] = "failed: " + JSON.parse(e.data).error; } catch (x) {} }
      else if (es.readyState !== 1) status[name] = "reconnecting";
      drawFeeds();
    });
  }
  fetch("/api/feeds" + q).then(function (r) { return r.json(); }).then(function (feeds) {
    feeds.forEach(function (f) { subscribe(f.name); });
  }).catch(function (e) { $("feeds").innerHTML = '<div class="empty">cannot list feeds: ' + esc(e) + "</div>"; });
})();
</script>
</body>
</html>
"""#
}
