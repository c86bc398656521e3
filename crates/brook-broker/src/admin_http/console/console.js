// Brook console: a hash-routed single page over the admin JSON API (/api/v1).
// Vanilla JavaScript, no framework; everything it shows is escaped with esc().
"use strict";

const API = "api/v1";
const view = () => document.getElementById("view");

// ---------------------------------------------------------------- helpers

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) =>
    ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Calls the API; actions carry the header the API requires of them. */
async function api(path, method = "GET", body) {
  const opts = { method, headers: {} };
  if (method !== "GET") {
    opts.headers["X-Brook-Request"] = "1";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body ?? {});
  }
  const res = await fetch(`${API}${path}`, opts);
  const data = await res.json().catch(() => ({ error: `HTTP_${res.status}`, message: res.statusText }));
  if (!res.ok) {
    const err = new Error(`${data.error}: ${data.message}`);
    err.kafka = data.error;
    throw err;
  }
  return data;
}

function toast(message, error = false) {
  const el = document.createElement("div");
  el.className = "toast" + (error ? " error" : "");
  el.textContent = message;
  document.getElementById("toasts").appendChild(el);
  setTimeout(() => el.remove(), error ? 8000 : 4000);
}

function bytes(n) {
  if (n == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function num(n) { return n == null ? "–" : Number(n).toLocaleString("en-US"); }
function rate(n) { return n >= 100 ? n.toFixed(0) : n.toFixed(1); }
function when(ms) { return ms < 0 ? "–" : new Date(ms).toISOString().replace("T", " ").replace("Z", ""); }

function stateBadge(state) {
  const cls = { Stable: "ok", Empty: "", Dead: "bad", PreparingRebalance: "warn", CompletingRebalance: "warn" }[state] ?? "";
  return `<span class="badge ${cls}" data-test="group-state">${esc(state)}</span>`;
}

function table(headers, rows, attrs = "") {
  const th = headers.map((h) => (h.startsWith("#") ? `<th class="num">${esc(h.slice(1))}</th>` : `<th>${esc(h)}</th>`)).join("");
  const body = rows.length ? rows.join("") : `<tr><td colspan="${headers.length}" class="muted">Nothing here yet.</td></tr>`;
  return `<table ${attrs}><thead><tr>${th}</tr></thead><tbody>${body}</tbody></table>`;
}

/** Form fields by name, as strings. */
function fields(form) { return Object.fromEntries(new FormData(form).entries()); }

// ---------------------------------------------------------------- charts

/**
 * An SVG line chart. `series`: [{ name, points: [[timeMs, value], ...] }].
 * Time runs along x over the samples kept; y starts at 0.
 */
function lineChart(series, unit = "") {
  const w = 600, h = 180, left = 56, bottom = 20, top = 8;
  const all = series.flatMap((s) => s.points);
  if (all.length < 2) return `<div class="chart muted">Collecting samples…</div>`;
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const max = Math.max(1, ...all.map((p) => p[1]));
  const x = (t) => left + ((t - t0) / Math.max(1, t1 - t0)) * (w - left - 4);
  const y = (v) => top + (1 - v / max) * (h - top - bottom);
  const lines = series.map((s, i) => {
    const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    return `<path class="line c${i % 6}" d="${d}"/>`;
  }).join("");
  const span = Math.round((t1 - t0) / 1000);
  const svg = `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img">
    <line class="axis" x1="${left}" y1="${h - bottom}" x2="${w}" y2="${h - bottom}"/>
    <line class="axis" x1="${left}" y1="${top}" x2="${left}" y2="${h - bottom}"/>
    <text x="${left - 4}" y="${top + 10}" text-anchor="end">${esc(rate(max))}${esc(unit)}</text>
    <text x="${left - 4}" y="${h - bottom}" text-anchor="end">0</text>
    <text x="${left}" y="${h - 4}">−${span}s</text><text x="${w - 4}" y="${h - 4}" text-anchor="end">now</text>
    ${lines}</svg>`;
  const legend = series.map((s, i) => {
    const last = s.points.length ? s.points[s.points.length - 1][1] : 0;
    return `<span><i class="c${i % 6}"></i>${esc(s.name)}: ${esc(rate(last))}${esc(unit)}</span>`;
  }).join("");
  return `<div class="chart">${svg}<div class="legend">${legend}</div></div>`;
}

// ---------------------------------------------------------------- samplers kept across pages

const KEEP_SAMPLES = 150;
const throughput = { last: null, series: { "messages in/s": [], "bytes in/s": [], "bytes out/s": [] } };

/** Samples /stats every 2 s and keeps per-second rates (client-side only). */
async function sampleThroughput() {
  if (document.hidden) return;
  try {
    const s = await api("/stats");
    const prev = throughput.last;
    throughput.last = s;
    if (!prev) return;
    const dt = Math.max(0.001, (s.time_ms - prev.time_ms) / 1000);
    const push = (name, v) => {
      const pts = throughput.series[name];
      pts.push([s.time_ms, Math.max(0, v) / dt]);
      if (pts.length > KEEP_SAMPLES) pts.shift();
    };
    push("messages in/s", s.messages_in - prev.messages_in);
    push("bytes in/s", s.bytes_in - prev.bytes_in);
    push("bytes out/s", s.bytes_out - prev.bytes_out);
    const el = document.getElementById("throughput");
    if (el) el.innerHTML = throughputCharts();
  } catch (e) { /* the overview shows errors; the sampler stays quiet */ }
}

function throughputCharts() {
  const s = throughput.series;
  return `<div class="grid2">
    <div class="panel"><h2>Messages in</h2>${lineChart([{ name: "messages/s", points: s["messages in/s"] }], "/s")}</div>
    <div class="panel"><h2>Bytes in and out</h2>${lineChart([{ name: "in B/s", points: s["bytes in/s"] }, { name: "out B/s", points: s["bytes out/s"] }], "")}</div>
  </div>`;
}

/** Lag samples per group: { total: [[t, v]], partitions: { "topic-0": [[t, v]] } }. */
const lagHistory = new Map();

function recordLag(group) {
  const h = lagHistory.get(group.group_id) ?? { total: [], partitions: {} };
  const t = Date.now();
  h.total.push([t, group.total_lag]);
  if (h.total.length > KEEP_SAMPLES) h.total.shift();
  for (const o of group.offsets) {
    if (o.lag == null) continue;
    const key = `${o.topic}-${o.partition}`;
    const pts = (h.partitions[key] ??= []);
    pts.push([t, o.lag]);
    if (pts.length > KEEP_SAMPLES) pts.shift();
  }
  lagHistory.set(group.group_id, h);
  return h;
}

// ---------------------------------------------------------------- routing

let pageTimers = [];
function every(ms, fn) { pageTimers.push(setInterval(fn, ms)); }

function route() {
  pageTimers.forEach(clearInterval);
  pageTimers = [];
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const [page, name, tab] = parts;
  document.querySelectorAll("[data-nav]").forEach((a) =>
    a.classList.toggle("active", a.dataset.nav === ({ topic: "topics", group: "groups" }[page] ?? page ?? "overview") || (!page && a.dataset.nav === "overview")));
  const render = {
    "": overview, topics: topicsPage, topic: () => topicPage(name, tab || "partitions"),
    groups: groupsPage, group: () => groupPage(name),
  }[page ?? ""] ?? overview;
  render().catch((e) => { view().innerHTML = `<p class="bad" data-test="page-error">${esc(e.message)}</p>`; });
}

// ---------------------------------------------------------------- overview

async function overview() {
  const c = await api("/cluster");
  document.getElementById("cluster-badge").textContent = `${c.mode} · node ${c.node_id} · v${c.version}`;
  const card = (label, value, cls = "", test = "") =>
    `<div class="card"><div class="label">${esc(label)}</div><div class="value ${cls}" ${test ? `data-test="${test}"` : ""}>${esc(value)}</div></div>`;
  const brokers = c.brokers.map((b) => `<tr data-test="broker-row"><td>${b.id}${b.id === c.controller_id ? ' <span class="badge ok">controller</span>' : ""}</td>
    <td>${esc(b.host)}</td><td class="num">${b.port}</td><td>${esc(b.rack ?? "–")}</td>
    <td>${b.fenced ? '<span class="badge bad">fenced</span>' : '<span class="badge ok">active</span>'}</td></tr>`);
  view().innerHTML = `<h1 id="overview">Cluster overview</h1>
    <div class="cards">
      ${card("Cluster id", c.cluster_id, "small")}
      ${card("Controller", c.controller_id < 0 ? "none" : `broker ${c.controller_id}`, "small", "controller")}
      ${card("Brokers", c.brokers.length, "", "broker-count")}
      ${card("Topics", c.topics, "", "topic-count")}
      ${card("Partitions", c.partitions)}
      ${card("Under-replicated", c.under_replicated_partitions, c.under_replicated_partitions ? "bad" : "", "under-replicated")}
      ${card("Offline", c.offline_partitions, c.offline_partitions ? "bad" : "")}
    </div>
    <h2>Brokers</h2>${table(["Id", "Host", "#Port", "Rack", "State"], brokers, 'id="brokers"')}
    <h2>Throughput</h2><div id="throughput">${throughputCharts()}</div>`;
}

// ---------------------------------------------------------------- topics

async function topicsPage() {
  const { topics } = await api("/topics");
  const showInternal = sessionStorage.getItem("showInternal") === "1";
  const rows = topics.filter((t) => showInternal || !t.internal).map((t) => `<tr data-test="topic-row" data-topic="${esc(t.name)}">
    <td><a href="#/topic/${encodeURIComponent(t.name)}">${esc(t.name)}</a>${t.internal ? ' <span class="badge">internal</span>' : ""}</td>
    <td class="num">${t.partitions}</td><td class="num">${t.replication_factor}</td>
    <td class="num">${num(t.messages)}</td><td class="num">${bytes(t.size_bytes)}</td>
    <td class="num ${t.under_replicated_partitions ? "bad" : ""}">${t.under_replicated_partitions}</td>
    <td>${t.internal ? "" : `<button class="danger" data-action="delete-topic" data-topic="${esc(t.name)}">Delete</button>`}</td></tr>`);
  view().innerHTML = `<h1>Topics</h1>
    <form id="topic-create-form" class="panel toolbar">
      <label>Name<input name="name" required pattern="[a-zA-Z0-9._\\-]+" maxlength="249" placeholder="orders"></label>
      <label>Partitions<input name="partitions" type="number" min="1" placeholder="default"></label>
      <label>Replication factor<input name="replication_factor" type="number" min="1" placeholder="default"></label>
      <label>Configs (name=value per line)<textarea name="configs" rows="1" placeholder="retention.ms=86400000"></textarea></label>
      <button class="primary" type="submit">Create topic</button>
    </form>
    <div class="toolbar"><label><span><input type="checkbox" id="show-internal" ${showInternal ? "checked" : ""}> show internal topics</span></label></div>
    ${table(["Name", "#Partitions", "#Replication", "#Messages", "#Size", "#Under-replicated", ""], rows, 'id="topics"')}`;
  document.getElementById("show-internal").onchange = (e) => {
    sessionStorage.setItem("showInternal", e.target.checked ? "1" : "0");
    route();
  };
  document.getElementById("topic-create-form").onsubmit = async (e) => {
    e.preventDefault();
    const f = fields(e.target);
    const body = { name: f.name.trim(), configs: parseConfigs(f.configs) };
    if (f.partitions) body.partitions = Number(f.partitions);
    if (f.replication_factor) body.replication_factor = Number(f.replication_factor);
    try {
      await api("/topics", "POST", body);
      toast(`Created topic ${body.name}`);
      route();
    } catch (err) { toast(err.message, true); }
  };
}

function parseConfigs(text) {
  const out = {};
  for (const line of (text || "").split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

async function topicPage(name, tab) {
  const t = await api(`/topics/${encodeURIComponent(name)}`);
  const base = `#/topic/${encodeURIComponent(name)}`;
  const tabs = ["partitions", "configs", "messages"].map((k) =>
    `<a href="${base}/${k}" class="${k === tab ? "active" : ""}" data-test="tab-${k}">${k[0].toUpperCase() + k.slice(1)}</a>`).join("");
  const size = t.partitions.reduce((a, p) => a + (p.size_bytes ?? 0), 0);
  const messages = t.partitions.reduce((a, p) => a + Math.max(0, (p.high_watermark ?? 0) - (p.log_start_offset ?? 0)), 0);
  view().innerHTML = `<h1><a href="#/topics">Topics</a> / <span data-test="topic-name">${esc(t.name)}</span>
      ${t.internal ? '<span class="badge">internal</span>' : ""}</h1>
    <div class="cards">
      <div class="card"><div class="label">Partitions</div><div class="value">${t.partitions.length}</div></div>
      <div class="card"><div class="label">Replication</div><div class="value">${t.replication_factor}</div></div>
      <div class="card"><div class="label">Messages</div><div class="value">${num(messages)}</div></div>
      <div class="card"><div class="label">Size</div><div class="value">${bytes(size)}</div></div>
      <div class="card"><div class="label">Topic id</div><div class="value small mono">${esc(t.topic_id)}</div></div>
    </div>
    <div class="tabs">${tabs}</div><div id="tab"></div>`;
  const el = document.getElementById("tab");
  if (tab === "configs") return configsTab(el, t);
  if (tab === "messages") return messagesTab(el, t);
  return partitionsTab(el, t);
}

function partitionsTab(el, t) {
  const rows = t.partitions.map((p) => {
    const short = p.isr.length < p.replicas.length;
    return `<tr data-test="partition-row"><td class="num">${p.partition}</td>
      <td class="num ${p.leader < 0 ? "bad" : ""}">${p.leader < 0 ? "none" : p.leader}</td>
      <td>${p.replicas.join(", ")}</td><td class="${short ? "bad" : ""}">${p.isr.join(", ")}</td>
      <td class="num">${num(p.log_start_offset)}</td><td class="num">${num(p.high_watermark)}</td>
      <td class="num">${num(p.log_end_offset)}</td><td class="num">${bytes(p.size_bytes)}</td></tr>`;
  });
  el.innerHTML = `${table(["#Partition", "#Leader", "Replicas", "ISR", "#Log start", "#High watermark", "#Log end", "#Size"], rows, 'id="partitions"')}
    ${t.internal ? "" : `<div class="grid2">
      <form id="add-partitions-form" class="panel toolbar"><label>New partition count<input name="count" type="number" min="${t.partitions.length + 1}" required></label>
        <button type="submit">Add partitions</button></form>
      <form id="delete-records-form" class="panel toolbar"><label>Partition<input name="partition" type="number" min="0" value="0" required></label>
        <label>Delete records before offset (−1: all)<input name="offset" type="number" min="-1" required></label>
        <button class="danger" type="submit">Delete records</button></form></div>`}`;
  const add = document.getElementById("add-partitions-form");
  if (add) add.onsubmit = (e) => action(e, () =>
    api(`/topics/${encodeURIComponent(t.name)}/partitions`, "POST", { count: Number(fields(e.target).count) }), "Partitions added");
  const del = document.getElementById("delete-records-form");
  if (del) del.onsubmit = (e) => {
    const f = fields(e.target);
    if (!confirm(`Delete records of ${t.name}-${f.partition} before offset ${f.offset}?`)) { e.preventDefault(); return; }
    action(e, () => api(`/topics/${encodeURIComponent(t.name)}/delete-records`, "POST",
      { partitions: [{ partition: Number(f.partition), offset: Number(f.offset) }] }), "Records deleted");
  };
}

/** Runs a form's action, reports it, and re-renders the page. */
async function action(e, fn, done) {
  e.preventDefault();
  try { await fn(); toast(done); route(); } catch (err) { toast(err.message, true); }
}

function configsTab(el, t) {
  const rows = t.configs.map((c) => `<tr data-test="config-row" data-config="${esc(c.name)}"><td class="mono">${esc(c.name)}</td>
    <td class="mono data">${c.sensitive ? "(sensitive)" : esc(c.value ?? "null")}</td>
    <td><span class="badge ${c.source === "DYNAMIC_TOPIC_CONFIG" ? "ok" : ""}">${esc(c.source)}</span></td>
    <td>${c.source === "DYNAMIC_TOPIC_CONFIG" && !t.internal ? `<button data-action="reset-config" data-config="${esc(c.name)}">Reset</button>` : ""}</td></tr>`);
  el.innerHTML = (t.internal ? "" : `<form id="config-form" class="panel toolbar">
      <label>Config<input name="name" list="config-names" required></label>
      <datalist id="config-names">${t.configs.map((c) => `<option value="${esc(c.name)}">`).join("")}</datalist>
      <label>Value<input name="value" required></label><button class="primary" type="submit">Set</button></form>`) +
    table(["Name", "Value", "Source", ""], rows, 'id="configs"');
  const form = document.getElementById("config-form");
  if (form) form.onsubmit = (e) => {
    const f = fields(e.target);
    action(e, () => api(`/topics/${encodeURIComponent(t.name)}/configs`, "PATCH", { set: { [f.name]: f.value } }), `Set ${f.name}`);
  };
  el.onclick = (e) => {
    const b = e.target.closest("[data-action=reset-config]");
    if (b) action(e, () => api(`/topics/${encodeURIComponent(t.name)}/configs`, "PATCH", { delete: [b.dataset.config] }), `Reset ${b.dataset.config}`);
  };
}

// ---------------------------------------------------------------- message browser

function b64bytes(s) { return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)); }
function hex(u8) { return Array.from(u8, (b) => b.toString(16).padStart(2, "0")).join(" "); }

/** Shows a key, value or header as the chosen decoding: auto, text, json or hex. */
function decode(d, mode) {
  if (!d) return '<span class="muted">null</span>';
  const raw = d.encoding === "text" ? new TextEncoder().encode(d.data) : b64bytes(d.data);
  const text = d.encoding === "text" ? d.data : new TextDecoder("utf-8", { fatal: false }).decode(raw);
  let out;
  if (mode === "hex" || (mode === "auto" && d.encoding !== "text")) out = hex(raw);
  else if (mode === "json" || mode === "auto") {
    try { out = JSON.stringify(JSON.parse(text), null, mode === "json" ? 2 : 0); } catch { out = mode === "json" ? `(not JSON) ${text}` : text; }
  } else out = text;
  return esc(out) + (d.truncated ? ` <span class="warn">… (${num(d.size)} bytes)</span>` : "");
}

function messageRow(m, mode) {
  const headers = m.headers.map((h) => `${esc(h.key)}=${decode(h.value, mode === "auto" ? "text" : mode)}`).join("<br>");
  return `<tr data-test="message-row" data-offset="${m.offset}"><td class="num">${m.offset}</td>
    <td class="mono" title="${esc(m.timestamp_type)}">${esc(when(m.timestamp))}</td>
    <td class="mono data" data-test="message-key">${decode(m.key, mode)}</td>
    <td class="mono data" data-test="message-value">${decode(m.value, mode)}</td>
    <td class="mono data">${headers}</td></tr>`;
}

function messagesTab(el, t) {
  const parts = t.partitions.map((p) => `<option value="${p.partition}">${p.partition}</option>`).join("");
  el.innerHTML = `<form id="browse-form" class="toolbar">
      <label>Partition<select name="partition">${parts}</select></label>
      <label>From<select name="from"><option value="last">last N</option><option value="earliest">earliest</option>
        <option value="offset">offset</option><option value="timestamp">time</option></select></label>
      <label>Offset<input name="offset" type="number" min="0" value="0"></label>
      <label>Time (UTC)<input name="time" type="datetime-local" step="1"></label>
      <label>Max records<input name="max" type="number" min="1" max="500" value="50"></label>
      <label>Show as<select name="mode"><option>auto</option><option>text</option><option>json</option><option>hex</option></select></label>
      <label>Isolation<select name="isolation"><option>read_uncommitted</option><option>read_committed</option></select></label>
      <button class="primary" type="submit">Load</button>
      <button type="button" id="tail" data-test="live-tail">Live tail</button>
    </form>
    <p class="muted" id="browse-status"></p>
    ${table(["#Offset", "Timestamp (UTC)", "Key", "Value", "Headers"], [], 'id="messages"')}`;
  const form = document.getElementById("browse-form");
  const tbody = el.querySelector("#messages tbody");
  const status = document.getElementById("browse-status");
  let shown = [], next = null, tailing = null;

  const query = (f, from) => {
    const q = new URLSearchParams({ partition: f.partition, max_records: f.max || 50, isolation: f.isolation });
    if (from != null) q.set("offset", from);
    else if (f.from === "last") q.set("offset", -Number(f.max || 50));
    else if (f.from === "earliest") q.set("offset", "earliest");
    else if (f.from === "offset") q.set("offset", f.offset || 0);
    else q.set("timestamp", f.time ? new Date(f.time + "Z").getTime() : 0);
    return q;
  };
  const render = (mode) => {
    tbody.innerHTML = shown.length ? shown.map((m) => messageRow(m, mode)).join("")
      : `<tr><td colspan="5" class="muted">No records in this range.</td></tr>`;
  };
  const load = async (append) => {
    const f = fields(form);
    try {
      const page = await api(`/topics/${encodeURIComponent(t.name)}/messages?${query(f, append ? next : null)}`);
      shown = append ? shown.concat(page.records).slice(-500) : page.records;
      next = page.next_offset;
      status.textContent = `Partition ${page.partition}: log start ${page.log_start_offset}, high watermark ${page.high_watermark}; ` +
        `showing ${shown.length} record(s), next offset ${page.next_offset} (${page.isolation}).`;
      if (!append || page.records.length) render(f.mode);
    } catch (err) { status.textContent = err.message; stopTail(); }
  };
  const stopTail = () => {
    if (tailing) clearInterval(tailing);
    tailing = null;
    document.getElementById("tail")?.classList.remove("on");
  };
  form.onsubmit = (e) => { e.preventDefault(); stopTail(); load(false); };
  form.elements.mode.onchange = () => render(form.elements.mode.value);
  document.getElementById("tail").onclick = (e) => {
    if (tailing) return stopTail();
    e.target.classList.add("on");
    const go = () => load(next != null);
    go();
    tailing = setInterval(go, 1000);
    pageTimers.push(tailing);
  };
  tbody.onclick = (e) => e.target.closest("tr")?.classList.toggle("open");
  load(false);
}

// ---------------------------------------------------------------- consumer groups

async function groupsPage() {
  const { groups, errors = [] } = await api("/groups");
  const rows = groups.map((g) => `<tr data-test="group-row" data-group="${esc(g.group_id)}">
    <td><a href="#/group/${encodeURIComponent(g.group_id)}">${esc(g.group_id)}</a></td>
    <td>${stateBadge(g.state)}</td><td>${esc(g.protocol_type || "–")}</td><td>${esc(g.protocol ?? "–")}</td>
    <td class="num">${g.members ?? "–"}</td><td class="num">${g.coordinator}</td></tr>`);
  const missing = errors.map((e) => `<p class="warn" data-test="partial">Broker ${e.broker} did not answer: ${esc(e.message)}</p>`).join("");
  view().innerHTML = `<h1>Consumer groups</h1>
    <p class="muted">Every group of the cluster, each from the broker coordinating it.</p>${missing}
    ${table(["Group", "State", "Protocol type", "Assignor", "#Members", "Coordinator"], rows, 'id="groups"')}`;
}

async function groupPage(id) {
  const draw = async () => {
    const g = await api(`/groups/${encodeURIComponent(id)}`);
    const h = recordLag(g);
    const members = g.members.map((m) => `<tr data-test="member-row"><td class="mono">${esc(m.member_id)}</td>
      <td>${esc(m.client_id)}</td><td>${esc(m.client_host)}</td>
      <td>${m.assignment.map((a) => `${esc(a.topic)}: ${a.partitions.join(", ")}`).join("<br>") || "–"}</td></tr>`);
    const offsets = g.offsets.map((o) => `<tr data-test="offset-row" data-partition="${esc(o.topic)}-${o.partition}">
      <td>${esc(o.topic)}</td><td class="num">${o.partition}</td><td class="num">${num(o.committed_offset)}</td>
      <td class="num">${num(o.log_end_offset)}</td><td class="num ${o.lag ? "warn" : ""}" data-test="lag">${num(o.lag)}</td>
      <td class="mono">${esc(o.member_id ?? "–")}</td></tr>`);
    const topics = [...new Set(g.offsets.map((o) => o.topic))];
    const perPartition = Object.entries(h.partitions).slice(0, 6).map(([name, points]) => ({ name, points }));
    view().innerHTML = `<h1><a href="#/groups">Consumer groups</a> / ${esc(g.group_id)} ${stateBadge(g.state)}</h1>
      <div class="cards">
        <div class="card"><div class="label">Total lag</div><div class="value" id="group-lag-total" data-test="total-lag">${num(g.total_lag)}</div></div>
        <div class="card"><div class="label">Members</div><div class="value">${g.members.length}</div></div>
        <div class="card"><div class="label">Assignor</div><div class="value small">${esc(g.protocol ?? "–")}</div></div>
        <div class="card"><div class="label">Coordinator</div><div class="value small">broker ${g.coordinator}</div></div>
      </div>
      <div class="grid2">
        <div class="panel"><h2>Total lag</h2>${lineChart([{ name: "lag", points: h.total }])}</div>
        <div class="panel"><h2>Lag per partition</h2>${lineChart(perPartition)}</div>
      </div>
      <h2>Offsets and lag</h2>${table(["Topic", "#Partition", "#Committed", "#Log end", "#Lag", "Member"], offsets, 'id="offsets"')}
      <h2>Members</h2>${table(["Member id", "Client id", "Host", "Assignment"], members, 'id="members"')}
      <h2>Actions</h2>
      <form id="reset-form" class="panel toolbar">
        <label>Topic<select name="topic">${topics.map((t) => `<option>${esc(t)}</option>`).join("")}</select></label>
        <label>Reset to<select name="to"><option>earliest</option><option>latest</option><option>offset</option><option>timestamp</option></select></label>
        <label>Offset<input name="offset" type="number" min="0" value="0"></label>
        <label>Time (UTC)<input name="time" type="datetime-local" step="1"></label>
        <label><span><input type="checkbox" name="dry_run"> dry run</span></label>
        <button class="primary" type="submit">Reset offsets</button>
        <button class="danger" type="button" data-action="delete-group">Delete group</button>
      </form>`;
    document.getElementById("reset-form").onsubmit = (e) => {
      const f = fields(e.target);
      const body = { topic: f.topic, to: f.to, dry_run: !!f.dry_run };
      if (f.to === "offset") body.offset = Number(f.offset);
      if (f.to === "timestamp") body.timestamp = f.time ? new Date(f.time + "Z").getTime() : 0;
      action(e, async () => {
        const r = await api(`/groups/${encodeURIComponent(id)}/reset-offsets`, "POST", body);
        if (r.dry_run) toast(`Dry run: ${r.partitions.map((p) => `${p.partition}→${p.offset}`).join(", ")}`);
      }, body.dry_run ? "Dry run done" : "Offsets reset");
    };
  };
  await draw();
  // Refreshed while shown; forms being filled in are left alone.
  every(3000, () => {
    const active = document.activeElement;
    if (active && active.closest("#reset-form")) return;
    draw().catch((e) => toast(e.message, true));
  });
}

// ---------------------------------------------------------------- page-wide actions

document.addEventListener("click", async (e) => {
  const b = e.target.closest("[data-action]");
  if (!b) return;
  if (b.dataset.action === "delete-topic") {
    if (!confirm(`Delete topic ${b.dataset.topic} and all its records?`)) return;
    try { await api(`/topics/${encodeURIComponent(b.dataset.topic)}`, "DELETE"); toast(`Deleted ${b.dataset.topic}`); route(); } catch (err) { toast(err.message, true); }
  } else if (b.dataset.action === "delete-group") {
    const id = decodeURIComponent(location.hash.split("/")[2] || "");
    if (!confirm(`Delete consumer group ${id} and its committed offsets?`)) return;
    try { await api(`/groups/${encodeURIComponent(id)}`, "DELETE"); toast(`Deleted ${id}`); location.hash = "#/groups"; } catch (err) { toast(err.message, true); }
  }
});

window.addEventListener("hashchange", route);
setInterval(sampleThroughput, 2000);
sampleThroughput();
route();
