#include "agent/monitor_page.h"

namespace sb {
namespace {

// The page. Its script builds the DOM with createElement/textContent only (never innerHTML from
// data): database names and error lines come from the agent's state and may hold any text.
constexpr std::string_view kPage = R"PAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>smartbackup</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f6f7f9; }
header { background: #1d2430; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
main { padding: 12px 20px; }
section.cluster { background: #fff; border: 1px solid #d8dce3; border-radius: 6px; padding: 10px 14px; margin-bottom: 14px; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: baseline; }
.name { font-weight: 600; font-size: 16px; }
.badge { padding: 1px 8px; border-radius: 10px; font-size: 12px; color: #fff; background: #6b7380; }
.badge.ok { background: #2e8540; } .badge.failing { background: #c0392b; } .badge.skipped, .badge.refused { background: #a86b00; }
.muted { color: #6b7380; }
svg.timeline { width: 100%; height: 118px; display: block; margin: 8px 0; }
svg text { font-size: 10px; fill: #6b7380; }
.mark-full { fill: #1f4e9c; } .mark-copy { fill: #7a8fb8; } .mark-log { fill: #4a90d9; }
.wal { fill: #9cc3ef; } .window { fill: #2e8540; opacity: .75; } .gap { fill: #c0392b; }
.drill-ok { fill: #7d3c98; } .drill-failed { fill: #c0392b; } .now { stroke: #1d2430; stroke-dasharray: 2 2; }
table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 2px 10px 2px 0; text-align: left; vertical-align: top; }
.fault { color: #c0392b; }
.legend span { margin-right: 14px; font-size: 12px; } .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
</style>
</head>
<body>
<header><h1>smartbackup</h1><span id="generated" class="muted"></span><span id="switch"></span></header>
<main>
<div class="legend muted">
<span><i style="background:#1f4e9c"></i>full backup</span><span><i style="background:#4a90d9"></i>log backup</span>
<span><i style="background:#9cc3ef"></i>WAL in the repository</span><span><i style="background:#2e8540"></i>restore window</span>
<span><i style="background:#c0392b"></i>gap (broken chain)</span><span><i style="background:#7d3c98"></i>drill</span>
</div>
<div id="clusters"><p class="muted" id="loading">loading /overview.json …</p></div>
<h2>Health (last 24 hours)</h2>
<table id="health"></table>
<h3>Recent events</h3>
<table id="events"></table>
</main>
<script>
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";
function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function t(s) { return s ? Date.parse(s) : NaN; }
function ago(ms) {
  if (!isFinite(ms)) return "—";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return s + " s"; if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h"; return Math.round(s / 86400) + " d";
}
function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; n = Number(n) || 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}
function timeline(c, now) {
  const tl = c.timeline, W = 1000, H = 118;
  const times = [now];
  for (const b of tl.bases) times.push(t(b.start));
  for (const w of tl.windows) times.push(t(w.start));
  for (const r of tl.wal_runs) times.push(t(r.first));
  for (const j of c.jobs) if (j.kind === "drill" && j.started) times.push(t(j.started));
  let lo = Math.min(...times.filter(isFinite)), hi = now;
  if (hi - lo < 60000) lo = hi - 60000;
  const pad = (hi - lo) * 0.02; lo -= pad; hi += pad;
  const x = (ms) => 40 + (ms - lo) / (hi - lo) * (W - 50);
  const svg = el("svg:svg", {class: "timeline", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none"});
  const rows = [["fulls", 8], ["logs", 28], ["WAL", 48], ["windows", 68], ["drills", 88]];
  for (const [label, y] of rows) svg.appendChild(el("svg:text", {x: 0, y: y + 9}, label));
  const bar = (cls, a, b, y, h, title, extra) => {
    const r = el("svg:rect", Object.assign({class: cls, x: x(a), y: y, width: Math.max(2, x(b) - x(a)), height: h}, extra || {}));
    r.appendChild(el("svg:title", {}, title)); svg.appendChild(r); return r;
  };
  for (const b of tl.bases)
    bar(b.type === "full" ? "mark-full" : "mark-copy", t(b.start), t(b.finish), 4, 16,
        `${b.type} backup ${b.backup_id}: ${b.start} → ${b.finish}, ${bytes(b.size_bytes)} (${bytes(b.stored_bytes)} stored)`,
        {"data-backup-id": b.backup_id});
  for (const l of tl.logs)
    bar("mark-log", t(l.finish), t(l.finish), 24, 16, `log backup ${l.backup_id} (${l.start_lsn} → ${l.end_lsn}) at ${l.finish}`,
        {"data-backup-id": l.backup_id});
  for (const r of tl.wal_runs)
    bar("wal", t(r.first), t(r.last), 44, 16, `WAL ${r.start_lsn} → ${r.end_lsn} on timeline ${r.timeline}: ${r.parts} parts, ${bytes(r.stored_bytes)}`);
  for (const w of tl.windows)
    bar("window", t(w.start), t(w.end), 64, 16, `restore window ${w.start} → ${w.end} (from ${w.base_backup_id})`);
  for (const g of tl.gaps)
    bar("gap", t(g.after), t(g.after), 40, 44, `gap: WAL ${g.start_lsn} → ${g.end_lsn} missing on timeline ${g.timeline}`);
  for (const j of c.jobs.filter((j) => j.kind === "drill" && j.started))
    bar(j.state === "succeeded" ? "drill-ok" : "drill-failed", t(j.started), t(j.finished || j.started), 84, 16,
        `drill ${j.state}: ${j.started} → ${j.finished || "running"}${j.error ? ": " + j.error : ""}`);
  svg.appendChild(el("svg:line", {class: "now", x1: x(now), x2: x(now), y1: 0, y2: 104}));
  svg.appendChild(el("svg:text", {x: 40, y: H - 2}, new Date(lo).toISOString().slice(0, 16).replace("T", " ")));
  svg.appendChild(el("svg:text", {x: W - 110, y: H - 2}, "now " + new Date(now).toISOString().slice(11, 16) + " UTC"));
  return svg;
}
function cluster(c, now) {
  const s = c.status;
  const sec = el("section", {class: "cluster", "data-database": s.database});
  const head = el("div", {class: "row"});
  head.appendChild(el("span", {class: "name"}, s.database));
  head.appendChild(el("span", {class: "badge " + s.condition, "data-condition": s.condition}, s.condition));
  head.appendChild(el("span", {class: "muted"}, `${s.role}, ${s.mode} mode${s.streaming ? ", streaming" : ""}`));
  head.appendChild(el("span", {}, "recovery point " + ("recovery_point_age_seconds" in s ? ago(s.recovery_point_age_seconds * 1000) + " ago" : "—")));
  head.appendChild(el("span", {}, "last full " + (s.last_full ? ago(now - t(s.last_full)) + " ago" : "—")));
  head.appendChild(el("span", {}, "last log " + (s.last_log ? ago(now - t(s.last_log)) + " ago" : "—")));
  head.appendChild(el("span", {class: "muted"}, `stored ${bytes(c.timeline.full_stored_bytes)} + ${bytes(c.timeline.wal_stored_bytes)} WAL`));
  sec.appendChild(head);
  sec.appendChild(el("div", {class: "state muted"}, s.state));
  if (c.timeline.loaded) sec.appendChild(timeline(c, now));
  else sec.appendChild(el("p", {class: "muted"}, "repository not read yet"));
  const tbl = el("table", {class: "decisions"});
  for (const [label, d] of [["next full", s.next_full], ["next log", s.next_log]]) {
    const tr = el("tr", {});
    tr.appendChild(el("th", {}, label)); tr.appendChild(el("td", {}, d.action));
    tr.appendChild(el("td", {}, d.reason)); tr.appendChild(el("td", {class: "muted"}, d.due ? "due " + d.due : ""));
    tbl.appendChild(tr);
  }
  for (const w of c.timeline.windows) {
    const tr = el("tr", {class: "window-row"});
    tr.appendChild(el("th", {}, "restore window")); tr.appendChild(el("td", {}, w.start + " → " + w.end));
    tr.appendChild(el("td", {class: "muted"}, "from " + w.base_backup_id)); tbl.appendChild(tr);
  }
  if (s.last_drill) {
    const d = s.last_drill, tr = el("tr", {class: "drill-row"});
    tr.appendChild(el("th", {}, "last drill")); tr.appendChild(el("td", {}, JSON.stringify(d)));
    tbl.appendChild(tr);
  }
  for (const f of s.faults) {
    const tr = el("tr", {class: "fault"});
    tr.appendChild(el("th", {}, f.activity + " failing")); tr.appendChild(el("td", {}, f.part + " since " + f.since));
    tr.appendChild(el("td", {}, f.error)); tbl.appendChild(tr);
  }
  sec.appendChild(tbl);
  return sec;
}
function render(o) {
  const now = t(o.generated_at);
  document.getElementById("generated").textContent = "as of " + o.generated_at;
  document.getElementById("switch").textContent = o.master_switch ? "" : "master switch OFF: scheduling paused";
  const box = document.getElementById("clusters");
  box.replaceChildren(...o.clusters.map((c) => cluster(c, now)));
  if (!o.clusters.length) box.appendChild(el("p", {class: "muted"}, "no cluster managed"));
  const h = document.getElementById("health");
  h.replaceChildren();
  for (const [k, v] of Object.entries(o.health.counts)) {
    const tr = el("tr", {"data-category": k}); tr.appendChild(el("th", {}, k)); tr.appendChild(el("td", {}, v)); h.appendChild(tr);
  }
  const ev = document.getElementById("events");
  ev.replaceChildren();
  for (const e of o.health.events.slice(-20).reverse()) {
    const tr = el("tr", {});
    for (const v of [e.at, e.database, e.category, e.message]) tr.appendChild(el("td", {}, v));
    ev.appendChild(tr);
  }
}
function load() {
  fetch("overview.json", {cache: "no-store"}).then((r) => r.json()).then(render).catch((e) => {
    document.getElementById("generated").textContent = "cannot read overview.json: " + e;
  });
}
load();
setInterval(load, 10000);
</script>
</body>
</html>
)PAGE";

}  // namespace

std::string_view MonitorPageHtml() { return kPage; }

}  // namespace sb
