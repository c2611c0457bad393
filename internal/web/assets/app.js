// Vigil's page. Every string shown comes from the monitored host and may be
// hostile: the DOM is built with textContent and never from HTML strings.
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function time(t) {
  const d = new Date(t);
  return isNaN(d) ? "" : d.toLocaleString();
}

async function get(url) {
  const r = await fetch(url, { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/login"; throw new Error("logged out"); }
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

let lastId = 0;
let selected = 0;

function alertRow(a, isNew) {
  const tr = row([
    time(a.time),
    el("td", a.severity, "sev-" + a.severity),
    a.rule_id,
    a.pid,
    a.executable || a.process_name,
    a.message,
  ], isNew ? "new" : "");
  tr.dataset.alertId = a.id;
  tr.dataset.shownAt = Date.now();
  tr.addEventListener("click", () => showAlert(a.id));
  return tr;
}

function addAlerts(list, isNew) {
  const tbody = $("#alerts tbody");
  for (const a of list || []) {
    if (a.id <= lastId) continue;
    tbody.insertBefore(alertRow(a, isNew), tbody.firstChild);
    lastId = a.id;
  }
  while (tbody.children.length > 500) tbody.removeChild(tbody.lastChild);
  $("#no-alerts").hidden = tbody.children.length > 0;
}

// flatten turns a document into [key, value] pairs: "process.args" -> "a b".
function flatten(obj, prefix, out) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? prefix + "." + k : k;
    if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else if (Array.isArray(v) && v.some((x) => x !== null && typeof x === "object")) {
      v.forEach((x, i) => flatten(x, key + "[" + i + "]", out));
    } else out.push([key, Array.isArray(v) ? JSON.stringify(v) : String(v)]);
  }
  return out;
}

async function showAlert(id) {
  selected = id;
  for (const tr of document.querySelectorAll("#alerts tbody tr")) {
    tr.classList.toggle("selected", Number(tr.dataset.alertId) === id);
  }
  const d = await get("/api/alerts/" + encodeURIComponent(id));
  if (selected !== id) return;
  $("#detail").hidden = false;
  $("#detail-id").textContent = d.alert.id;
  $("#detail-rule").textContent = d.alert.rule_name + " (" + d.alert.rule_id + ", " + d.alert.severity + ")";
  $("#detail-message").textContent = d.alert.message;
  const tree = $("#tree");
  tree.replaceChildren(...(d.tree || []).map((n, i, all) => {
    const li = el("li", n.pid + "  " + (n.executable || n.name || "?") + (n.args && n.args.length ? "  " + JSON.stringify(n.args) : ""));
    if (i === all.length - 1) li.className = "subject";
    return li;
  }));
  fill($("#trigger tbody"), flatten(d.trigger ? JSON.parse(JSON.stringify(d.trigger)) : {}, "", [])
    .map(([k, v]) => row([el("th", k), v])));
  const related = (d.events || []).map((e) => row([time(e.time), e.kind, e.summary]))
    .concat((d.alerts || []).filter((a) => a.id !== d.alert.id).map((a) => row([time(a.time), "alert", a.rule_id + ": " + a.message])));
  fill($("#related tbody"), related);
  $("#no-related").hidden = related.length > 0;
}

function talkers(list) {
  return (list || []).map((t) => row([t.name, t.out, t.in, t.failures]));
}

async function refresh() {
  const o = await get("/api/overview");
  const h = o.health || {};
  $("#summary").textContent = (h.version ? "vigil " + h.version + ", " : "") +
    Math.round(h.events_per_second || 0) + " events/s, " + (h.alerts_raised || 0) + " alerts raised";
  fill($("#rules tbody"), o.rules.map((r) => row([r.rule_id, r.count, time(r.last)])));
  fill($("#blocked tbody"), o.blocked.map((b) => row([b.prefix, b.reason, b.until && !b.until.startsWith("0001") ? time(b.until) : "removed by hand"])));
  $("#no-blocked").hidden = o.blocked.length > 0;
  fill($("#remote tbody"), talkers(o.remote));
  fill($("#programs tbody"), talkers(o.programs));
  fill($("#sensors tbody"), (h.sensors || []).map((s) => row([s.name, el("td", s.state, "state-" + s.state), s.detail || ""])));
  fill($("#drops tbody"), (h.kinds || []).map((k) => row([k.kind, k.received, k.kernel_lost, k.queue_dropped])));
  fill($("#sinks tbody"), (h.sinks || []).map((s) => row([s.Name, s.Queued + "/" + s.Capacity, s.Written, s.Dropped, s.Failures])));
}

function live() {
  const src = new EventSource("/api/stream?after=" + lastId);
  src.onopen = () => { $("#live").textContent = "live"; $("#live").className = "live"; };
  src.onerror = () => { $("#live").textContent = "reconnecting…"; $("#live").className = "live off"; };
  src.addEventListener("alert", (ev) => addAlerts([JSON.parse(ev.data)], true));
}

async function start() {
  addAlerts(await get("/api/alerts?limit=100"), false);
  live();
  refresh().catch(() => {});
  setInterval(() => refresh().catch(() => {}), 2000);
}

start().catch((e) => { $("#live").textContent = String(e); });
