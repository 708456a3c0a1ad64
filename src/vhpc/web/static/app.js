/* vhpc dashboard. Plain JS, no dependencies, no external resources.
 *
 * Contract with the manager: the models of src/vhpc/models.py, served as the OpenAPI schema
 * at /openapi.json (src/vhpc/web/app.py). Served pages: "/" -> index.html, "/static/*" ->
 * this directory. "since" is always an age in seconds.
 *
 *   GET /api/v1/status  -> Status {cluster, phase, progress, nodes: [NodeStatus {name, role,
 *       ip, cpuset, memory_limit, memory_usage, oom_kills, slurm_state, gres, group,
 *       partitions, features, rack, services: [Daemon
 *       {name, state, pid, restarts}], cpu_percent?}], jobs: [Job {id, name, user, state,
 *       nodes, time}]}
 *   GET /api/v1/metrics?node=&metric=memory|cpu|rx|tx&since=600
 *       -> MetricsResult {series: [MetricSeries {node, metric, points: [[ts, value]]}]};
 *       node omitted: every node plus "_total" (cluster sum).
 *   GET /api/v1/logs?q=&node=&service=&level=&since=&limit= -> LogList {logs: [LogLine
 *       {id, ts, node, service, level, message, kind}]}, newest first.
 *   GET /api/v1/jobs?all=true&limit= -> JobList {accounting, jobs: [Job {id, name, user,
 *       account, partition, state, nodes, elapsed, exit_code, max_rss, submit, start, end}]}
 *   GET /api/v1/events?since= -> EventList {events: [Event {id, ts, kind, node, level,
 *       message}]}, newest first.
 *   GET /api/v1/stream -> text/event-stream: "event: status" data = Status (with the
 *       sampler's numbers), every sampling interval; "event: log" data = [LogLine].
 *   Errors: ErrorBody {error: {type, message, fix}}.
 * Over TCP every API call needs the token: the page is opened as /?token=TOKEN (the URL
 * `vhpc up` and `vhpc status` print); it sends the token as "Authorization: Bearer" on
 * fetches and as ?token= on the EventSource (which cannot set headers). The server also
 * sets a cookie on /?token=, so a reload without the query still works.
 * If the stream fails the page polls /api/v1/status every 5 s instead.
 */
"use strict";

const TOTAL = "_total";
const POLL_MS = 5000;
const CHART_MS = 10000;
const MAX_LOG_ROWS = 500;

const state = {
  status: null,
  metric: "memory",
  range: 600,
  cpu: {},            // node -> last cpu % from the cpu series
  lastLogId: 0,
  pollTimer: null,
  chartTimer: null,
  sseErrors: 0,
};

const $ = (sel) => document.querySelector(sel);
const TOKEN = new URLSearchParams(window.location.search).get("token") || "";
const AUTH = TOKEN ? { Authorization: `Bearer ${TOKEN}` } : {};

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "style") e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/* A request that got no answer at all is tried again (twice, 0.3 s apart): on a vhpc host
   network interfaces come and go with every node, and Chromium aborts requests in flight
   when they do (net::ERR_NETWORK_CHANGED). An HTTP error is an answer: never retried. */
async function fetchRetrying(url, options, tries = 3) {
  for (let i = 1; ; i++) {
    try {
      return await fetch(url, options);
    } catch (err) {
      if (i >= tries) throw err;
      await new Promise((done) => setTimeout(done, 300));
    }
  }
}

async function getJSON(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== "" && v !== null && v !== undefined) qs.set(k, v);
  }
  const url = qs.toString() ? `${path}?${qs}` : path;
  const r = await fetchRetrying(url, { headers: { Accept: "application/json", ...AUTH } });
  if (!r.ok) {
    let detail = `HTTP ${r.status}`;
    try { const e = (await r.json()).error; if (e) detail = `${e.type}: ${e.message}`; } catch (_) {}
    throw new Error(`${url}: ${detail}`);
  }
  return r.json();
}

/* ---------- formatting ---------- */
function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${u[i]}`;
}
const fmtPct = (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(0)}%`);
const fmtRate = (v) => `${fmtBytes(v)}/s`;
const UNITS = { memory: fmtBytes, cpu: fmtPct, rx: fmtRate, tx: fmtRate };

function fmtTime(ts, withDate) {
  const d = new Date(ts * 1000);
  const p = (x) => String(x).padStart(2, "0");
  const t = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return withDate ? `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${t}` : t;
}

function colorFor(name) {
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return `hsl(${(h * 137) % 360}, 62%, 46%)`;
}

const stateClass = (s) => "st-" + String(s || "unknown").toLowerCase().replace(/[^a-z_]/g, "");

/* ---------- status: header, nodes, jobs ---------- */
function renderStatus(st) {
  state.status = st;
  $("#cluster").textContent = st.cluster || "";
  document.title = `vhpc: ${st.cluster || ""}`;
  const phase = $("#phase");
  phase.textContent = st.phase || "?";
  phase.className = `badge ${st.phase || ""}`;
  renderNodes(st.nodes || []);
  renderJobs(st.jobs || []);
  renderSummary(st);
  updateNodeFilter(st.nodes || []);
}

function renderSummary(st) {
  const nodes = st.nodes || [];
  const used = nodes.reduce((a, n) => a + (n.memory_usage || 0), 0);
  const limit = nodes.reduce((a, n) => a + (n.memory_limit || 0), 0);
  const running = (st.jobs || []).filter((j) => /^r/i.test(j.state || "")).length;
  const pending = (st.jobs || []).filter((j) => /^pd|^pending/i.test(j.state || "")).length;
  $("#summary").textContent =
    `${nodes.length} nodes · ${running} running, ${pending} pending · ` +
    (st.slurm_version ? `Slurm ${st.slurm_version} · ` : "") +
    `memory ${fmtBytes(used)} / ${fmtBytes(limit)} · updated ${fmtTime(Date.now() / 1000)}`;
}

function nodeCard(n) {
  const cpu = n.cpu_percent ?? state.cpu[n.name];
  const frac = n.memory_limit ? Math.min(1, (n.memory_usage || 0) / n.memory_limit) : 0;
  const services = (n.services || []).map((s) =>
    el("span", { class: `svc ${String(s.state || "").toLowerCase()}`,
      title: `${s.name}: ${s.state}${s.pid ? " pid " + s.pid : ""}` +
             `${s.restarts ? ", " + s.restarts + " restarts" : ""}` }));
  return el("div", { class: `node ${stateClass(n.slurm_state)}`, "data-node": n.name },
    n.oom_kills ? el("span", { class: "oom", title: "processes killed by the OOM killer" },
      `OOM ${n.oom_kills}`) : null,
    el("div", { class: "name" }, n.name),
    el("div", { class: "meta" }, `${n.role || ""} · ${n.ip || ""} · cpus ${n.cpuset || "–"}`),
    el("div", { class: "meta" }, `slurm: ${n.slurm_state || "–"} · CPU ${fmtPct(cpu)}`),
    n.gres ? el("div", { class: "meta", title: "Slurm GRES (fake GPUs)" }, `gres ${n.gres}`)
      : null,
    (n.features || []).length ? el("div", { class: "meta", title: "Slurm features" +
      (n.rack ? `; rack ${n.rack}` : "") }, `features ${n.features.join(",")}`) : null,
    el("div", { class: `bar${frac > 0.9 ? " hot" : ""}`,
      title: `memory ${fmtBytes(n.memory_usage)} of ${fmtBytes(n.memory_limit)}` },
      el("div", { style: `width:${(frac * 100).toFixed(1)}%` })),
    el("div", { class: "meta" }, `mem ${fmtBytes(n.memory_usage)} / ${fmtBytes(n.memory_limit)}`),
    el("div", {}, ...services));
}

/* Nodes grouped by the partitions they are in (service nodes first), once each; a cluster
 * whose compute nodes all share one partition list keeps one flat grid. */
function nodeGroups(nodes) {
  const groups = new Map();
  for (const n of nodes) {
    const key = (n.partitions || []).join(", ");
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(n);
  }
  return [...groups.entries()].sort((a, b) => (a[0] === "" ? -1 : b[0] === "" ? 1 : 0));
}

function renderNodes(nodes) {
  const box = $("#nodes");
  const groups = nodeGroups(nodes);
  if (groups.filter(([key]) => key).length <= 1) {
    box.replaceChildren(...nodes.map(nodeCard));
  } else {
    box.replaceChildren(...groups.map(([key, members]) =>
      el("div", { class: "pgroup", "data-partitions": key },
        el("h3", {}, key ? `partition ${key}` : "service nodes",
          el("span", { class: "meta" }, ` (${members.length})`)),
        el("div", { class: "grid" }, ...members.map(nodeCard)))));
  }
  $("#node-count").textContent = `(${nodes.length})`;
}

function renderJobs(jobs) {
  const body = $("#jobs tbody");
  body.replaceChildren(...jobs.map((j) =>
    el("tr", { "data-job": j.id },
      el("td", {}, j.id), el("td", {}, j.name), el("td", {}, j.user),
      el("td", {}, j.state), el("td", {}, j.nodes), el("td", {}, j.time))));
  if (!jobs.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "meta" }, "no jobs")));
  $("#job-count").textContent = `(${jobs.length})`;
}

function updateNodeFilter(nodes) {
  const sel = $("#f-node");
  const have = new Set([...sel.options].map((o) => o.value));
  for (const n of nodes) if (!have.has(n.name)) sel.append(el("option", { value: n.name }, n.name));
}

/* ---------- charts (hand-written SVG) ---------- */
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawChart(box, series, fmt) {
  const W = Math.max(200, box.clientWidth || 600);
  const H = Math.max(120, box.clientHeight || 220);
  const m = { l: 64, r: 10, t: 8, b: 20 };
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" },
      "no data yet"));
    box.replaceChildren(root);
    return;
  }
  const now = Date.now() / 1000;
  const x0 = Math.min(now - state.range, ...pts.map((p) => p[0]));
  const x1 = Math.max(now, ...pts.map((p) => p[0]));
  const ymax = Math.max(1e-9, ...pts.map((p) => p[1])) * 1.1;
  const X = (t) => m.l + ((t - x0) / (x1 - x0 || 1)) * (W - m.l - m.r);
  const Y = (v) => H - m.b - (v / ymax) * (H - m.t - m.b);
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    root.append(svg("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: "grid" }));
    root.append(svg("text", { x: m.l - 4, y: Y(v) + 3, "text-anchor": "end" }, fmt(v)));
  }
  for (let i = 0; i <= 4; i++) {
    const t = x0 + ((x1 - x0) * i) / 4;
    root.append(svg("text", { x: X(t), y: H - 5, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" },
      fmtTime(t, state.range > 86000 && i === 0)));
  }
  root.append(svg("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b, class: "axis" }));
  root.append(svg("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b, class: "axis" }));
  for (const s of series) {
    if (!s.points.length) continue;
    const line = svg("polyline", {
      points: s.points.map((p) => `${X(p[0]).toFixed(1)},${Y(p[1]).toFixed(1)}`).join(" "),
      stroke: s.color || (s.node === TOTAL ? "#1d2330" : colorFor(s.node)), "data-node": s.node });
    line.append(svg("title", {}, `${s.node}: ${fmt(s.points[s.points.length - 1][1])}`));
    root.append(line);
  }
  box.replaceChildren(root);
}

const QUEUE_COLORS = { pending: "#d08700", running: "#2a7ab0", allocated: "#1d2330" };

async function refreshSlurmCharts() {  // queue length and utilisation, from Slurm's gauges
  try {
    const [queue, util] = await Promise.all([
      getJSON("/api/v1/metrics", { metric: "queue", since: state.range }),
      getJSON("/api/v1/metrics", { metric: "utilisation", since: state.range })]);
    const colored = (series) => (series || []).map((s) => ({ ...s, color: QUEUE_COLORS[s.node] }));
    drawChart($("#chart-queue"), colored(queue.series), (v) => Number(v).toFixed(v < 10 ? 1 : 0));
    drawChart($("#chart-util"), colored(util.series), fmtPct);
  } catch (err) {
    console.warn("slurm charts:", err);
  }
}

async function refreshCharts() {
  refreshSlurmCharts();
  try {
    const data = await getJSON("/api/v1/metrics", { metric: state.metric, since: state.range });
    const series = data.series || [];
    const fmt = UNITS[state.metric] || String;
    const perNode = series.filter((s) => s.node !== TOTAL);
    let total = series.filter((s) => s.node === TOTAL);
    if (!total.length) total = [{ node: TOTAL, points: sumSeries(perNode) }];
    drawChart($("#chart-nodes"), perNode, fmt);
    drawChart($("#chart-total"), total, fmt);
    $("#legend").replaceChildren(...perNode.slice(0, 32).map((s) =>
      el("span", {}, el("i", { style: `background:${colorFor(s.node)}` }), s.node)),
      perNode.length > 32 ? el("span", {}, `+${perNode.length - 32} more`) : "");
    if (state.metric === "cpu") {
      for (const s of perNode) if (s.points.length) state.cpu[s.node] = s.points[s.points.length - 1][1];
    }
  } catch (err) {
    console.warn("metrics:", err);
  }
}

function sumSeries(series) {
  const acc = new Map();
  for (const s of series) for (const [t, v] of s.points) acc.set(t, (acc.get(t) || 0) + v);
  return [...acc.entries()].sort((a, b) => a[0] - b[0]);
}

async function refreshCpu() {
  // CPU % for the node cards when the status has no cpu_percent
  if (state.metric === "cpu") return;
  try {
    const data = await getJSON("/api/v1/metrics", { metric: "cpu", since: 60 });
    for (const s of data.series || []) {
      if (s.node !== TOTAL && s.points.length) state.cpu[s.node] = s.points[s.points.length - 1][1];
    }
  } catch (err) {
    console.warn("cpu:", err);
  }
}

/* ---------- logs and events ---------- */
function logFilters() {
  return {
    q: $("#q").value.trim(), node: $("#f-node").value, service: $("#f-service").value.trim(),
    level: $("#f-level").value, since: $("#f-since").value,
  };
}

function logRow(r) {
  return el("tr", { class: `lv-${r.level}`, "data-id": r.id },
    el("td", { class: "nowrap" }, fmtTime(r.ts, true)),
    el("td", { class: "nowrap" }, r.node || "–"),
    el("td", { class: "nowrap" }, r.service),
    el("td", { class: "lv nowrap" }, r.level),
    el("td", { class: "msg" }, r.message));
}

async function searchLogs() {
  try {
    const data = await getJSON("/api/v1/logs", { ...logFilters(), limit: 200 });
    const rows = data.logs || [];
    $("#logs tbody").replaceChildren(...rows.map(logRow));
    state.lastLogId = Math.max(state.lastLogId, ...rows.map((r) => r.id || 0), 0);
  } catch (err) {
    console.warn("logs:", err);
  }
}

const LEVELS = ["debug", "info", "notice", "warning", "error", "fatal"];
function matches(r, f) {
  if (f.node && r.node !== f.node) return false;
  if (f.service && r.service !== f.service) return false;
  if (f.level && LEVELS.indexOf(r.level) < LEVELS.indexOf(f.level)) return false;
  if (f.q) {
    const msg = String(r.message).toLowerCase();
    if (!f.q.toLowerCase().split(/\s+/).every((w) => msg.includes(w.replace(/\*$/, "")))) return false;
  }
  return true;
}

function onLogRows(rows) {
  if (!$("#follow").checked) return;
  const f = logFilters();
  const body = $("#logs tbody");
  for (const r of rows) {
    if (r.id && r.id <= state.lastLogId) continue;
    state.lastLogId = Math.max(state.lastLogId, r.id || 0);
    if (r.service === "vhpc") prependEvent(r);
    if (matches(r, f)) body.prepend(logRow(r));
  }
  while (body.rows.length > MAX_LOG_ROWS) body.deleteRow(body.rows.length - 1);
}

function eventItem(e) {
  return el("li", { class: `lv-${e.level}`, "data-id": e.id },
    el("time", {}, fmtTime(e.ts, true)), e.kind ? el("b", {}, `${e.kind} `) : "",
    e.node ? `[${e.node}] ` : "", e.message);
}

function prependEvent(e) {
  $("#events").prepend(eventItem(e));
}

async function refreshEvents() {
  try {
    const data = await getJSON("/api/v1/events", { since: 86400 });
    $("#events").replaceChildren(...(data.events || []).map(eventItem));
  } catch (err) {
    console.warn("events:", err);
  }
}

/* ---------- job history: GET /api/v1/jobs?all=true (sacct with accounting) ---------- */
const fmtElapsed = (s) => {
  const t = Math.max(0, Math.floor(s || 0));
  const hms = [Math.floor(t / 3600) % 24, Math.floor(t / 60) % 60, t % 60]
    .map((v) => String(v).padStart(2, "0")).join(":");
  return t >= 86400 ? `${Math.floor(t / 86400)}-${hms}` : hms;
};

async function refreshHistory() {
  try {
    const data = await getJSON("/api/v1/jobs", { all: true, limit: 200 });
    const jobs = (data.jobs || []).filter((j) => j.end);
    $("#history tbody").replaceChildren(...jobs.map((j) =>
      el("tr", { "data-job": j.id, class: stateClass(j.state) },
        el("td", {}, j.id), el("td", {}, j.name), el("td", {}, j.user),
        el("td", {}, j.account || "–"), el("td", {}, j.state),
        el("td", {}, fmtElapsed(j.elapsed)), el("td", {}, j.exit_code || "–"),
        el("td", {}, j.max_rss == null ? "–" : fmtBytes(j.max_rss)),
        el("td", {}, fmtTime(j.end)), el("td", {}, j.nodes || "–"))));
    if (!jobs.length) {
      $("#history tbody").append(el("tr", {}, el("td", { colspan: 10, class: "meta" },
        data.accounting ? "no finished jobs" : "no finished jobs (no accounting: " +
        "slurmctld keeps them 5 minutes)")));
    }
    $("#history-count").textContent = `(${jobs.length})`;
  } catch (err) {
    console.warn("jobs:", err);
  }
}

/* ---------- live updates: SSE, else polling ---------- */
function setLive(mode) {
  const live = $("#live");
  live.className = `live ${mode}`;
  live.textContent = { sse: "live", poll: "polling", off: "offline" }[mode] || mode;
  live.dataset.mode = mode;
}

async function pollStatus() {
  try {
    renderStatus(await getJSON("/api/v1/status?max_age=10"));
    if (state.pollTimer) setLive("poll");
  } catch (err) {
    setLive("off");
  }
}

function startPolling() {
  if (state.pollTimer) return;
  setLive("poll");
  state.pollTimer = setInterval(() => {
    pollStatus();
    if ($("#follow").checked) searchLogs();
  }, POLL_MS);
}

function startStream() {
  if (!window.EventSource) { startPolling(); return; }
  const es = new EventSource(TOKEN ? `/api/v1/stream?token=${encodeURIComponent(TOKEN)}`
                                   : "/api/v1/stream");
  es.addEventListener("status", (ev) => {
    state.sseErrors = 0;
    setLive("sse");
    try { renderStatus(JSON.parse(ev.data)); } catch (err) { console.warn("status event:", err); }
  });
  es.addEventListener("log", (ev) => {
    try {
      const d = JSON.parse(ev.data);
      onLogRows(Array.isArray(d) ? d : d.logs || [d]);
    } catch (err) { console.warn("log event:", err); }
  });
  es.onerror = () => {
    state.sseErrors++;
    if (state.sseErrors >= 3) {   // the browser retries by itself; give up after 3
      es.close();
      startPolling();
    } else {
      setLive("off");
    }
  };
}

/* ---------- wiring ---------- */
function init() {
  for (const b of document.querySelectorAll("#metric-tabs button")) {
    b.addEventListener("click", () => {
      for (const o of document.querySelectorAll("#metric-tabs button")) o.classList.remove("on");
      b.classList.add("on");
      state.metric = b.dataset.metric;
      refreshCharts();
    });
  }
  $("#range").addEventListener("change", (e) => { state.range = Number(e.target.value); refreshCharts(); });
  $("#log-form").addEventListener("submit", (e) => { e.preventDefault(); searchLogs(); });
  for (const id of ["#f-node", "#f-level", "#f-since"]) $(id).addEventListener("change", searchLogs);
  window.addEventListener("resize", refreshCharts);

  pollStatus();
  searchLogs();
  refreshEvents();
  refreshCharts();
  refreshCpu();
  state.chartTimer = setInterval(() => { refreshCharts(); refreshCpu(); }, CHART_MS);
  setInterval(refreshEvents, 30000);
  refreshHistory();
  setInterval(refreshHistory, 15000);
  startStream();
}

document.addEventListener("DOMContentLoaded", init);
