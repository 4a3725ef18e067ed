"use strict";
// The status page: reads the JSON API, follows the event stream, and sends the
// operator's controls. Everything a service can say (names, details, logs) goes
// into the page as text (textContent, attributes), never as markup.
const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "medic.token";
const STRIP = 60;

// h("td", {class: "x", dataset: {label: "Y"}}, child, "text", ...): a DOM element.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "class") el.className = value;
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false || child === "") continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}
const text = (v) => v == null || v === "" ? "—" : String(v);
const pill = (v) => v ? h("span", {class: `pill ${v}`}, String(v).replace(/_/g, " ")) : "—";
const sub = (...children) => h("div", {class: "sub"}, ...children);
const cell = (label, cls, ...children) => h("td", {dataset: {label}, class: cls || null}, ...children);

function ago(iso) {
  if (!iso) return "—";
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const a = Math.abs(s);
  const t = a < 60 ? `${a}s` : a < 3600 ? `${Math.round(a / 60)}m` : a < 172800 ? `${Math.round(a / 3600)}h` : `${Math.round(a / 86400)}d`;
  return s > 1 ? `in ${t}` : a <= 1 ? "just now" : `${t} ago`;
}
const when = (iso) => iso ? h("span", {title: new Date(iso).toLocaleString()}, ago(iso)) : "—";
function clock(iso) {
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}
const pct = (v) => v == null ? "—" : `${Number(v).toFixed(2)}%`;
const ms = (s) => s == null ? "—" : s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`;

// ---- the last checks: a strip of ticks and a latency sparkline ----------------------

function tickClass(c) { return c.healthy ? "ok" : c.failure_type ? "fail" : "unknown"; }
function tickLabel(c) {
  const verdict = c.healthy ? "healthy" : (c.failure_type || "undecided");
  return `${clock(c.time)} · ${verdict} · ${ms(c.duration_seconds)} · ${c.detail || ""}`;
}
function showTick(info, tick, c) {
  for (const t of tick.parentNode.children) { t.classList.toggle("current", t === tick); t.tabIndex = t === tick ? 0 : -1; }
  info.replaceChildren(h("strong", {}, clock(c.time)), ` · ${c.healthy ? "healthy" : (c.failure_type || "undecided")} · ${ms(c.duration_seconds)} · `, c.detail || "");
}
function strip(name, checks) {
  const info = h("div", {class: "tick-info", id: `checkinfo-${name}`, "aria-live": "polite"});
  const box = h("div", {class: "strip", role: "group", "aria-label": `last ${checks.length} checks of ${name} (arrow keys move)`, dataset: {count: checks.length}});
  checks.forEach((c, i) => {
    const tick = h("button", {type: "button", class: `tick ${tickClass(c)}`, title: tickLabel(c), "aria-label": tickLabel(c),
      tabindex: i === checks.length - 1 ? 0 : -1, dataset: {key: `tick-${name}-${i}`, outcome: tickClass(c)}});
    const show = () => showTick(info, tick, c);
    tick.addEventListener("mouseenter", show);
    tick.addEventListener("focus", show);
    tick.addEventListener("click", show);
    tick.addEventListener("keydown", (ev) => {
      const step = {ArrowLeft: -1, ArrowRight: 1, Home: -STRIP, End: STRIP}[ev.key];
      if (!step) return;
      ev.preventDefault();
      const ticks = [...box.children];
      ticks[Math.max(0, Math.min(ticks.length - 1, i + step))].focus();
    });
    box.append(tick);
  });
  return [box, info];
}
const SVG = "http://www.w3.org/2000/svg";
function sparkline(name, checks) {
  const svg = document.createElementNS(SVG, "svg");
  const W = 120, H = 24;
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.id = `spark-${name}`;
  const times = checks.map((c) => c.duration_seconds || 0);
  const max = Math.max(...times, 0.001);
  const x = (i) => checks.length < 2 ? W : (i * W) / (checks.length - 1);
  const y = (t) => H - 1 - (t / max) * (H - 2);
  const title = document.createElementNS(SVG, "title");
  title.textContent = checks.length ? `latency of the last ${checks.length} checks, max ${ms(max)}, last ${ms(times[times.length - 1])}` : "no checks yet";
  svg.setAttribute("aria-label", title.textContent);
  svg.append(title);
  if (checks.length) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", times.map((t, i) => `${x(i).toFixed(1)},${y(t).toFixed(1)}`).join(" "));
    const end = document.createElementNS(SVG, "circle");
    end.setAttribute("cx", x(times.length - 1).toFixed(1));
    end.setAttribute("cy", y(times[times.length - 1]).toFixed(1));
    end.setAttribute("r", "2");
    svg.append(line, end);
  }
  return svg;
}

// ---- rows ----------------------------------------------------------------------------

function button(label, key, handler, cls) {
  return h("button", {type: "button", class: cls || null, dataset: {key}, "aria-busy": busy.has(key) ? "true" : null,
    on: {click: (ev) => handler(ev.currentTarget)}}, label);
}
function serviceActions(s) {
  const n = s.name;
  const paused = s.status === "paused";
  return h("div", {class: "actions"},
    button("Check now", `check-${n}`, (b) => act(b, "POST", svcPath(n, "check"), null, `check ${n}`)),
    button("Recover…", `recover-${n}`, (b) => recoverDialog(b, s)),
    button("Reset", `reset-${n}`, (b) => act(b, "POST", svcPath(n, "reset"), null, `reset ${n}`)),
    paused ? button("Resume", `resume-${n}`, (b) => act(b, "POST", svcPath(n, "resume"), null, `resume ${n}`))
      : button("Pause…", `pause-${n}`, (b) => pauseDialog(b, s)));
}
const svcPath = (name, verb) => `/api/v1/services/${encodeURIComponent(name)}/${verb}`;

function pauseNote(s) {
  // Maintenance (GET /api/v1/services/{name}: paused_until, pause_reason, paused_by).
  if (s.status !== "paused") return null;
  return h("div", {class: "note"}, "maintenance, ", s.paused_until ? ["ends ", when(s.paused_until)] : "until resumed",
    `: ${text(s.pause_reason)} (by ${text(s.paused_by)})`);
}
function serviceRow(s, checks) {
  const last = s.last_check;
  const kind = [s.check_type, s.container && `container ${s.container}`, s.unit && `unit ${s.unit}`,
    s.source === "docker" ? "from docker labels" : "from the config file"].filter(Boolean).join(" · ");
  const reason = s.held_reason && s.held_reason === hostHold ? "host-wide hold (see above)" : s.held_reason;
  const uptime = s.uptime || {"7d": s.uptime_percentage};
  const [box, info] = strip(s.name, checks || []);
  return h("tr", {id: `svc-${s.name}`, dataset: {status: s.status, circuit: s.circuit}},
    cell("Service", "wide title", h("strong", {}, s.name), sub(kind)),
    cell("Status", null, pill(s.status), reason ? h("div", {class: "note"}, `held: ${reason}`) : null, pauseNote(s), sub("since ", when(s.status_since))),
    cell("Failure", null, text(s.failure_type)),
    cell("Circuit", null, pill(s.circuit), s.next_attempt_at ? sub("next attempt ", when(s.next_attempt_at)) : null,
      s.probation_at && s.probation_at !== s.next_attempt_at ? sub("probation ", when(s.probation_at)) : null,
      s.attempts_in_window ? sub(`${s.attempts_in_window} attempt(s) in window`) : null),
    cell("Uptime", "uptime", h("div", {}, `24h ${pct(uptime["24h"])}`), h("div", {}, `7d ${pct(uptime["7d"])}`)),
    cell("Last checks", "wide", last ? when(last.time) : "—",
      last ? h("div", {class: "sub clip", title: last.detail || ""}, text(last.detail)) : null,
      h("div", {class: "checks"}, box, sparkline(s.name, checks || [])), info),
    cell("Actions", "wide", serviceActions(s)));
}
function workflowRow(w) {
  return h("tr", {id: `wf-${w.id}`, dataset: {status: w.status}},
    cell("Workflow", "wide title", h("strong", {}, w.id), w.config && w.config.description ? sub(w.config.description) : null),
    cell("Status", null, pill(w.status), w.queued ? sub("waiting for a slot") : null),
    cell("Next run", null, w.next_run_at ? when(w.next_run_at) : "manual / paused"),
    cell("Last run", null, w.last_run ? [when(w.last_run), w.last_outcome ? [" ", pill(w.last_outcome)] : ""] : "—"),
    cell("Runs", null, text(w.run_count)),
    cell("Errors", null, w.error_count ? h("span", {class: "errors"}, String(w.error_count)) : text(w.error_count)));
}

// ---- recoveries: a line each, opening to steps, output and evidence --------------------

const openRecoveries = new Set();
const recoveryDetail = new Map();
function recoveryItem(r) {
  const steps = (r.steps || []).map((st) => h("span", {class: `step ${st.outcome}`, title: st.detail || ""}, st.action));
  const waiting = r.outcome === "waiting_approval";
  const more = h("details", {class: "more", dataset: {key: `rec-${r.id}`}, open: openRecoveries.has(r.id)},
    h("summary", {}, "steps, output and evidence"), h("div", {class: "rec-body"}));
  more.addEventListener("toggle", () => {
    if (!more.open) openRecoveries.delete(r.id);
    else if (!openRecoveries.has(r.id)) { openRecoveries.add(r.id); loadRecovery(r.id, more.lastChild); }
  });
  if (more.open) fillRecovery(more.lastChild, recoveryDetail.get(r.id) || r, r.id);
  return h("li", {dataset: {id: r.id, service: r.service, outcome: r.outcome}}, h("span", {class: `dot ${r.outcome}`}),
    h("div", {class: "ev-head"}, h("time", {datetime: r.started_at}, clock(r.started_at)), h("strong", {}, r.service),
      h("span", {}, `${text(r.failure_type)} → ${text(r.playbook)}`), pill(r.outcome),
      h("span", {class: "sub"}, r.duration_seconds == null ? "" : `${r.duration_seconds.toFixed(2)} s · `, text(r.trigger), r.dry_run ? " · dry run" : "")),
    steps.length ? h("div", {class: "steps"}, steps) : null,
    r.detail ? h("div", {class: "sub clip", title: r.detail}, r.detail) : null,
    waiting ? h("div", {class: "actions"},
      button("Approve", `approve-${r.id}`, (b) => act(b, "POST", `/api/v1/recoveries/${r.id}/approve`, null, `approve recovery ${r.id}`), "primary"),
      button("Reject", `reject-${r.id}`, (b) => act(b, "POST", `/api/v1/recoveries/${r.id}/reject`, null, `reject recovery ${r.id}`), "danger")) : null,
    more);
}
async function loadRecovery(id, body) {
  fillRecovery(body, recoveryDetail.get(id), id);
  try {
    const r = await getJSON(`/api/v1/recoveries/${id}`);
    recoveryDetail.set(id, r);
    fillRecovery(body, r, id);
  } catch (err) { body.replaceChildren(h("div", {class: "sub"}, `cannot load the recovery: ${err.message}`)); }
}
function fillRecovery(body, r, id) {
  if (!r) { body.replaceChildren(sub("loading…")); return; }
  const steps = (r.steps || []).map((st) => h("div", {class: `step-detail ${st.outcome}`},
    h("div", {}, h("strong", {}, st.action), " ", pill(st.outcome), st.phase && st.phase !== "main" ? ` (${st.phase})` : "",
      h("span", {class: "sub"}, ` ${ms(st.duration_seconds)}`)),
    st.description ? sub(st.description) : null,
    st.detail ? h("div", {}, st.detail) : null,
    st.output ? h("pre", {class: "output"}, st.output) : null));
  body.replaceChildren(...(steps.length ? steps : [sub("no steps")]), evidence(r.evidence));
  body.dataset.loaded = String(id);
}
function evidence(e) {
  // What the container showed before the recovery acted (GET /api/v1/recoveries/{id}).
  if (!e || typeof e !== "object") return "";
  const facts = [["state", e.status], ["exit code", e.exit_code], ["OOMKilled", e.oom_killed], ["health", e.health_status]]
    .filter(([, v]) => v != null).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]);
  const health = (e.health_log || []).map((p) => `${text(p.start)} exit ${text(p.exit_code)}: ${p.output ?? ""}`).join("\n");
  return h("div", {class: "evidence"},
    h("strong", {}, "Evidence"), e.container ? ` of ${e.container}` : "", e.gathered_at ? h("span", {class: "sub"}, ` · ${clock(e.gathered_at)}`) : "",
    facts.length ? h("dl", {class: "evidence"}, facts) : null,
    e.log ? [sub(`container log, last ${text(e.log_lines)} line(s)`), h("pre", {class: "evidence-log"}, e.log)] : null,
    health ? [sub("health log"), h("pre", {class: "evidence-health"}, health)] : null,
    (e.notes || []).map((n) => sub(n)));
}

// ---- banners ---------------------------------------------------------------------------

function banners(svc, error, health) {
  const out = [];
  if (error) out.push(h("div", {class: "banner bad", id: "banner-error"}, `Cannot reach the medic daemon: ${error}. Retrying…`));
  const history = health && health.history;
  if (history && history.status === "degraded") {
    out.push(h("div", {class: "banner bad", id: "banner-history"}, h("strong", {}, "History degraded:"),
      ` ${history.pending_writes} ${history.pending_writes === 1 ? "write" : "writes"} pending`,
      history.dropped ? `, ${history.dropped} dropped` : "",
      ". Checks and recoveries go on; the history is written when the state disk takes writes again. ",
      h("span", {class: "sub"}, history.last_error || "")));
  }
  if (svc && svc.recovery_hold) {
    out.push(h("div", {class: "banner", id: "banner-hold"}, h("strong", {}, "Automatic recovery is held host-wide."), " ", svc.recovery_hold));
  }
  for (const e of (svc && svc.discovery_errors) || []) {
    out.push(h("div", {class: "banner bad discovery-error"}, "Container ", h("strong", {}, e.container), " is not watched: ",
      h("code", {}, e.label), `: ${e.message}`));
  }
  $("banners").replaceChildren(...out);
}

// ---- rendering and refreshing ------------------------------------------------------------

let data = null;
let hostHold = null;
let lastError = null;
function keepFocus(fn) {
  const active = document.activeElement;
  const key = active && active.dataset ? active.dataset.key : null;
  fn();
  if (key && !document.querySelector("dialog[open]")) {
    const again = document.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again && again !== document.activeElement) again.focus({preventScroll: true});
  }
}
function render() {
  if (!data) return;
  const {svc, wf, rec, health, checks} = data;
  hostHold = svc.recovery_hold || null;
  const empty = (n, t) => h("tr", {}, h("td", {colspan: n, class: "empty"}, t));
  keepFocus(() => {
    $("services").replaceChildren(...(svc.services.length ? svc.services.map((s) => serviceRow(s, checks[s.name])) : [empty(7, "no services configured")]));
    $("workflows").replaceChildren(...(wf.workflows.length ? wf.workflows.map(workflowRow) : [empty(6, "no workflows configured")]));
    $("recoveries").replaceChildren(...(rec.recoveries.length ? rec.recoveries.map(recoveryItem) : [h("li", {class: "empty"}, "no recoveries yet")]));
  });
  $("recoveries").classList.toggle("none", !rec.recoveries.length);
  const up = svc.services.filter((s) => s.status === "healthy").length;
  $("svc-count").textContent = `${up} of ${svc.services.length} healthy`;
  $("mode").hidden = !(health && health.dry_run);
  banners(svc, lastError, health);
}

async function getJSON(path) {
  const res = await fetch(path, {cache: "no-store"});
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}
async function recentChecks(services) {
  const answers = await Promise.all(services.map((s) =>
    getJSON(svcPath(s.name, "checks") + `?limit=${STRIP}`).then((a) => a.checks, () => [])));
  return Object.fromEntries(services.map((s, i) => [s.name, answers[i]]));
}
async function refresh() {
  try {
    const [svc, wf, rec, health] = await Promise.all([getJSON("/api/v1/services"), getJSON("/api/v1/workflows"),
      getJSON("/api/v1/recoveries?limit=15"), getJSON("/api/v1/health")]);
    const checks = await recentChecks(svc.services);
    for (const id of openRecoveries) recoveryDetail.delete(id);
    data = {svc, wf, rec, health, checks};
    lastError = null;
    render();
    for (const id of openRecoveries) {
      const body = document.querySelector(`li[data-id="${id}"] .rec-body`);
      if (body) loadRecovery(id, body);
    }
    $("meta").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    lastError = err.message;
    banners(data && data.svc, lastError, data && data.health);
    $("meta").textContent = "daemon unreachable";
  }
}

// ---- controls: the token, the dialogs and the calls ---------------------------------------

function showResult(ok, message) {
  const box = $("action-result");
  box.className = `banner ${ok ? "ok" : "bad"}`;
  box.dataset.ok = String(ok);
  box.textContent = message;
}
const pendingModal = new Map();
function modal(dialog, okButton, onOpen) {
  // Resolves true when confirmed (button or Enter), false on Cancel or Escape.
  // A dialog asked for again before its last answer settled answers that one "no" first.
  const earlier = pendingModal.get(dialog);
  if (earlier) earlier(false);
  return new Promise((resolve) => {
    const opener = document.activeElement;
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      pendingModal.delete(dialog);
      okButton.removeEventListener("click", ok);
      dialog.removeEventListener("keydown", enter);
      dialog.removeEventListener("cancel", cancel);
      dialog.removeEventListener("close", closed);
      if (dialog.open) dialog.close();
      // The row may have been drawn again meanwhile: its new button has the same key.
      const key = opener && opener.dataset ? opener.dataset.key : null;
      const back = opener && opener.isConnected ? opener : key && document.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (back) back.focus();
      resolve(value);
    };
    const ok = () => finish(true);
    const cancel = () => finish(false);
    // Escape settles at once (its close event comes later, maybe after the dialog
    // was opened again); a close event while the dialog is open is such a late one.
    const closed = () => { if (!dialog.open) finish(false); };
    const enter = (ev) => { if (ev.key === "Enter" && ev.target.tagName === "INPUT") { ev.preventDefault(); finish(true); } };
    okButton.addEventListener("click", ok);
    dialog.addEventListener("keydown", enter);
    dialog.addEventListener("cancel", cancel);
    dialog.addEventListener("close", closed);
    dialog.querySelector("button:not(.primary)").onclick = cancel;
    pendingModal.set(dialog, finish);
    dialog.showModal();
    if (onOpen) onOpen();
  });
}
async function token() {
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) return kept;
  const input = $("token-input");
  input.value = "";
  const ok = await modal($("token-dialog"), $("token-ok"), () => input.focus());
  const value = input.value.trim();
  input.value = "";
  if (!ok || !value) return null;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token-state").hidden = false;
  return value;
}
function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token-state").hidden = true;
}
function summary(label, body) {
  if (body && typeof body === "object") {
    if ("healthy" in body && "detail" in body) return `${label}: ${body.healthy ? "healthy" : (body.failure_type || "unhealthy")} (${body.detail})`;
    if ("outcome" in body) return `${label}: ${body.outcome}${body.detail ? ` (${body.detail})` : ""}`;
    if ("status" in body && "circuit" in body) return `${label}: ${body.status}, circuit ${body.circuit}`;
  }
  return `${label}: done`;
}
const busy = new Set();
async function act(btn, method, path, body, label) {
  // A button stays focusable while its call runs (a disabled one would drop the focus).
  if (busy.has(btn.dataset.key)) return;
  const secret = await token();
  if (!secret) { showResult(false, `${label}: cancelled (no token given)`); return; }
  busy.add(btn.dataset.key);
  btn.setAttribute("aria-busy", "true");
  showResult(true, `${label}…`);
  try {
    const headers = {Authorization: `Bearer ${secret}`};
    if (body) headers["Content-Type"] = "application/json";
    const res = await fetch(path, {method, headers, body: body ? JSON.stringify(body) : undefined, cache: "no-store"});
    const answer = await res.json().catch(() => null);
    if (!res.ok) {
      const e = (answer && answer.error) || {code: `HTTP_${res.status}`, message: res.statusText};
      if (res.status === 401) forgetToken();
      showResult(false, `${label} refused: ${e.code}: ${e.message} (HTTP ${res.status})`);
      $("action-result").dataset.code = e.code;
    } else {
      showResult(true, summary(label, answer));
      delete $("action-result").dataset.code;
    }
  } catch (err) {
    showResult(false, `${label} failed: ${err.message}`);
  } finally {
    busy.delete(btn.dataset.key);
    btn.removeAttribute("aria-busy");
    refresh();
  }
}
let failureTypes = null;
async function loadFailureTypes() {
  if (!failureTypes) {
    const doc = await getJSON("/api/v1/openapi.json");
    failureTypes = doc.components.schemas.FailureType.enum;
  }
  return failureTypes;
}
async function recoverDialog(btn, s) {
  const select = $("recover-type");
  const types = await loadFailureTypes().catch(() => []);
  select.replaceChildren(h("option", {value: ""}, "the service's own (last seen)"), ...types.map((t) => h("option", {value: t}, t)));
  select.value = s.failure_type || "";
  $("recover-dry").checked = false;
  $("recover-title").textContent = `Recover ${s.name}`;
  if (!await modal($("recover-dialog"), $("recover-ok"), () => select.focus())) return;
  const body = {};
  if (select.value) body.failure_type = select.value;
  if ($("recover-dry").checked) body.dry_run = true;
  await act(btn, "POST", svcPath(s.name, "recover"), body, `recover ${s.name}`);
}
async function pauseDialog(btn, s) {
  $("pause-title").textContent = `Pause ${s.name}`;
  if (!await modal($("pause-dialog"), $("pause-ok"), () => $("pause-for").focus())) return;
  const body = {for: $("pause-for").value.trim() || "30m"};
  const reason = $("pause-reason").value.trim();
  if (reason) body.reason = reason;
  await act(btn, "POST", svcPath(s.name, "pause"), body, `pause ${s.name}`);
}

// ---- live updates ---------------------------------------------------------------------------

let pending = null;
function scheduleRefresh() { if (!pending) pending = setTimeout(() => { pending = null; refresh(); }, 150); }
const EVENTS = ["discovery.changed", "discovery.error", "service.state", "service.unhealthy", "service.recovered", "service.stopped_by_operator",
  "recovery.started", "recovery.step", "recovery.succeeded", "recovery.failed", "recovery.finished", "recovery.held",
  "recovery.resumed", "recovery.approval_required", "recovery.approved", "recovery.rejected", "recovery.expired",
  "circuit.opened", "circuit.closed", "circuit.probation", "maintenance.started", "maintenance.ended",
  "workflow.started", "workflow.step", "workflow.succeeded", "workflow.failed", "workflow.cancelled", "workflow.skipped"];
function connect() {
  const source = new EventSource("/api/v1/events");
  const conn = $("conn");
  source.onopen = () => { conn.textContent = "● live"; conn.className = "meta live"; scheduleRefresh(); };
  source.onmessage = scheduleRefresh;
  for (const name of EVENTS) source.addEventListener(name, scheduleRefresh);
  source.onerror = () => { conn.textContent = "○ reconnecting"; conn.className = "meta down"; };
}
// History writes failing (or going in again) publish no event: the daemon's health is polled.
async function refreshHealth() {
  if (!data) return;
  try { data.health = await getJSON("/api/v1/health"); banners(data.svc, lastError, data.health); } catch (err) { /* refresh() reports */ }
}

$("token-state").hidden = !sessionStorage.getItem(TOKEN_KEY);
$("token-state").addEventListener("click", () => { forgetToken(); showResult(true, "token forgotten"); });
refresh();
connect();
setInterval(refresh, 30000);
setInterval(refreshHealth, 5000);
// Healthy checks publish no event: the strips are polled (which also keeps "12s ago" true).
async function refreshChecks() {
  if (!data || document.querySelector("dialog[open]")) return;
  try { data.checks = await recentChecks(data.svc.services); } catch (err) { /* refresh() reports */ }
  render();
}
setInterval(refreshChecks, 3000);

// ---- with fleet: the fleet's view (polled: its changes come from etcd, not this daemon) --
function fleetBanners(view) {
  const out = [];
  if (!view.connected) out.push(h("div", {class: "banner bad", id: "banner-fleet-down"}, h("strong", {}, "etcd cannot be reached:"),
    " shared and fleet-limited recoveries are held (fleet_unavailable)."));
  const stop = view.emergency_stop;
  if (stop) out.push(h("div", {class: "banner bad", id: "banner-fleet-stop"}, h("strong", {}, "Emergency stop"),
    ` by ${text(stop.by)}: ${stop.reason || "no reason given"}`));
  if (view.hold) out.push(h("div", {class: "banner", id: "banner-fleet-hold"}, h("strong", {}, "Fleet hold: "), view.hold));
  return out;
}
function fleetRow(host) {
  const s = host.services || {};
  const holds = Object.entries(host.holds || {}).map(([k, v]) => `${k}: ${v}`).join("; ");
  const beat = host.heartbeat_age_s == null ? "—" : `${host.heartbeat_age_s}s ago`;
  return h("tr", {dataset: {state: host.state}}, h("td", {}, host.host), h("td", {}, text(host.group)), h("td", {}, host.state),
    h("td", {}, beat), h("td", {}, `${s.up || 0} / ${s.down || 0} / ${s.held || 0}`), h("td", {class: "clip"}, holds));
}
let fleetTimer = null;
async function refreshFleet() {
  let view;
  try {
    const res = await fetch("/api/v1/fleet", {cache: "no-store"});
    if (res.status === 404) { clearInterval(fleetTimer); return; }  // no fleet: section
    if (!res.ok) return;
    view = await res.json();
  } catch (err) { return; }
  $("fleet").hidden = false;
  $("fleet-sub").textContent = `this host ${view.host}, group ${view.group}`;
  $("fleet-banners").replaceChildren(...fleetBanners(view));
  const rows = view.hosts.map(fleetRow);
  $("fleet-hosts").replaceChildren(...(rows.length ? rows : [h("tr", {}, h("td", {colspan: 6}, "no hosts registered"))]));
  $("fleet-locks").textContent = view.locks.map((l) => `${l.service} healed by ${l.host} (fence ${l.fence})`).join(" · ");
}
fleetTimer = setInterval(refreshFleet, 2000);
refreshFleet();
