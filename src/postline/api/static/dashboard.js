// Postline operations dashboard: polls /api/v1/stats and redraws in place.
// Every value from the server is put in the DOM as text (never innerHTML):
// message fields are user data.
"use strict";

(() => {
  const POLL_MS = 1500;
  const MAX_SAMPLES = 120; // three minutes of samples at POLL_MS
  const KEEP_REQUEUED_MS = 8000; // a retried row stays visible (marked) this long
  const KEY_STORE = "postline.apiKey";
  const FAILURES_URL = "/api/v1/messages?status=failed&limit=20";
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const STATUSES = ["scheduled", "pending", "sending", "retrying", "sent",
    "delivered", "undelivered", "failed", "cancelled"];
  const CHANNEL_STREAMS = ["message_queue:sms", "message_queue:mms",
    "message_queue:whatsapp", "message_queue:email"];

  const $ = (id) => document.getElementById(id);
  const state = {
    samples: [],
    requeued: new Map(), // message id -> time the retry was accepted
    openId: null,
    running: false,
    timer: null,
    toastTimer: null,
  };

  class AuthError extends Error {}

  // ---- HTTP -------------------------------------------------------------
  async function api(path, options = {}) {
    const headers = { Accept: "application/json" };
    const key = sessionStorage.getItem(KEY_STORE);
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(path, { ...options, headers, cache: "no-store" });
    if (response.status === 401) throw new AuthError("unauthorized");
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const detail = body && body.error ? body.error.message : response.statusText;
      const error = new Error(`${response.status} ${detail}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  // ---- DOM helpers ------------------------------------------------------
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  const badge = (status) => el("span", `badge s-${STATUSES.includes(status) ? status : "x"}`, status);
  const fmtInt = (n) => Number(n).toLocaleString("en-US");
  function fmtRate(v) {
    if (v === 0) return "0";
    if (v >= 100) return v.toFixed(0);
    if (v >= 10) return v.toFixed(1);
    return v >= 1 ? v.toFixed(2) : v.toFixed(3); // one message a minute is 0.017/s
  }
  // Times are local; the date is shown when it is not today (or when asked for).
  function fmtTime(iso, { date = false, ms = false } = {}) {
    if (!iso) return "–";
    const d = new Date(iso);
    let time = d.toLocaleTimeString("en-GB", { hour12: false });
    if (ms) time += `.${String(d.getMilliseconds()).padStart(3, "0")}`;
    const today = d.toDateString() === new Date().toDateString();
    return date || !today ? `${d.toLocaleDateString("en-CA")} ${time}` : time;
  }
  function ago(iso) {
    const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    return seconds < 60 ? `${seconds.toFixed(1)} s ago` : `${Math.round(seconds / 60)} min ago`;
  }
  const errorText = (error) => (error ? [error.code, error.message].filter(Boolean).join(": ") : "");

  function toast(text, kind = "") {
    const node = $("toast");
    node.textContent = text;
    node.className = `toast ${kind}`;
    node.hidden = false;
    clearTimeout(state.toastTimer);
    state.toastTimer = setTimeout(() => { node.hidden = true; }, 3500);
  }

  function setConnection(kind, text) {
    const node = $("conn");
    node.className = `pill pill-${kind}`;
    node.dataset.state = kind;
    node.textContent = text;
  }

  // ---- Stats ------------------------------------------------------------
  function renderStats(stats) {
    const q = stats.queues;
    const backlog = CHANNEL_STREAMS.reduce((sum, s) => sum + (q[s] ? q[s].depth : 0), 0);
    const inflight = stats.workers.reduce((sum, w) => sum + w.inflight, 0);
    $("kpi-sent").textContent = fmtRate(stats.throughput.sent_per_second);
    $("kpi-failed").textContent = fmtRate(stats.throughput.failed_per_second);
    $("kpi-failed").classList.toggle("bad", stats.throughput.failed_per_second > 0);
    $("kpi-backlog").textContent = fmtInt(backlog);
    $("kpi-delayed").textContent = fmtInt(q["message_queue:retry"] ? q["message_queue:retry"].depth : 0);
    $("kpi-dead").textContent = fmtInt(q["message_queue:dead"] ? q["message_queue:dead"].depth : 0);
    $("kpi-workers").textContent = fmtInt(stats.workers.length);
    $("kpi-workers").classList.toggle("bad", stats.workers.length === 0);
    $("kpi-inflight").textContent = `live · ${fmtInt(inflight)} in flight`;

    const deepest = Math.max(1, ...Object.values(q).map((n) => n.depth));
    $("queues").tBodies[0].replaceChildren(...Object.entries(q).map(([stream, n]) => {
      const bar = el("div", stream === "message_queue:dead" ? "bar bar-dead" : "bar", el("span"));
      bar.firstChild.style.width = `${(100 * n.depth) / deepest}%`;
      return el("tr", "", el("td", "", el("span", "mono", stream), bar),
        el("td", "num", fmtInt(n.depth)), el("td", "num", fmtInt(n.pending)));
    }));

    let total = 0;
    $("statuses").replaceChildren(...STATUSES.map((status) => {
      const count = stats.messages[status] || 0;
      total += count;
      const chip = el("div", "chip", badge(status), el("span", "count", fmtInt(count)));
      chip.dataset.status = status;
      return chip;
    }));
    $("total").textContent = `${fmtInt(total)} messages stored`;

    $("workers").tBodies[0].replaceChildren(...stats.workers.map((w) => el("tr", "",
      el("td", "mono", w.name),
      el("td", "", fmtTime(w.last_heartbeat), el("span", "muted", ` · ${ago(w.last_heartbeat)}`)),
      el("td", "num", fmtInt(w.inflight)))));
    $("workers").hidden = stats.workers.length === 0;
    $("workers-empty").hidden = stats.workers.length > 0;

    state.samples.push({ t: Date.now(), sent: stats.throughput.sent_per_second,
      failed: stats.throughput.failed_per_second });
    if (state.samples.length > MAX_SAMPLES) state.samples.shift();
    drawChart();
  }

  // ---- Chart (hand-drawn SVG) ------------------------------------------
  const SVG_NS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function niceMax(v) {
    if (v <= 0) return 0.1;
    const power = 10 ** Math.floor(Math.log10(v));
    const step = [1, 2, 2.5, 5, 10].find((m) => m * power >= v);
    return step * power;
  }
  function drawChart() {
    const box = $("chart");
    const width = Math.max(300, box.clientWidth);
    const height = box.clientHeight || 220;
    const pad = { left: 48, right: 8, top: 10, bottom: 22 };
    const now = Date.now();
    const span = MAX_SAMPLES * POLL_MS;
    const top = niceMax(Math.max(0, ...state.samples.map((s) => Math.max(s.sent, s.failed))));
    const x = (t) => pad.left + ((t - (now - span)) / span) * (width - pad.left - pad.right);
    const y = (v) => pad.top + (1 - v / top) * (height - pad.top - pad.bottom);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}` });
    const decimals = Math.max(0, Math.ceil(-Math.log10(top / 4)));
    for (let i = 0; i <= 4; i += 1) {
      const v = (top * i) / 4;
      root.append(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
      root.append(svg("text", { class: "axis-label", x: pad.left - 8, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(decimals)));
    }
    const labels = [[now - span, "3 min ago", "start"], [now - span / 2, "90 s ago", "middle"], [now, "now", "end"]];
    for (const [t, text, anchor] of labels) {
      root.append(svg("text", { class: "axis-label", x: x(t), y: height - 5, "text-anchor": anchor }, text));
    }
    const points = state.samples.filter((s) => s.t >= now - span);
    if (points.length > 0) {
      const line = (key) => points.map((s) => `${x(s.t).toFixed(1)},${y(s[key]).toFixed(1)}`).join(" ");
      const first = x(points[0].t).toFixed(1);
      const last = x(points[points.length - 1].t).toFixed(1);
      root.append(svg("path", { class: "area-sent", d: `M${first},${y(0)} L${line("sent")} L${last},${y(0)} Z` }));
      root.append(svg("polyline", { class: "line-sent", points: line("sent") }));
      root.append(svg("polyline", { class: "line-failed", points: line("failed") }));
    }
    box.replaceChildren(root);
  }

  // ---- Recent failures ---------------------------------------------------
  function failureRow(message) {
    const retry = el("button", "btn btn-small", "Retry");
    retry.type = "button";
    retry.dataset.action = "retry";
    const row = el("tr", "",
      el("td", "", fmtTime(message.updated_at)),
      el("td", "status-cell", badge(message.status)),
      el("td", "", message.type),
      el("td", "mono", message.to),
      el("td", "wrap", errorText(message.error) || "–"),
      el("td", "num", message.attempts),
      el("td", "num", retry));
    row.dataset.id = message.id;
    row.dataset.updated = message.updated_at;
    row.addEventListener("click", (event) => {
      if (event.target.closest("button")) return;
      openMessage(message.id);
    });
    retry.addEventListener("click", () => retryMessage(message.id, row, retry));
    return row;
  }

  function renderFailures(items) {
    const body = $("failures").tBodies[0];
    const existing = new Map([...body.rows].map((row) => [row.dataset.id, row]));
    const now = Date.now();
    const rows = [];
    for (const message of items) {
      const row = existing.get(message.id);
      // Same id and update time: leave the row (and a button being clicked) in place.
      if (row && row.dataset.updated === message.updated_at) rows.push(row);
      else { state.requeued.delete(message.id); rows.push(failureRow(message)); }
      existing.delete(message.id);
    }
    for (const [id, row] of existing) {
      const since = state.requeued.get(id);
      if (since !== undefined && now - since < KEEP_REQUEUED_MS) rows.push(row);
      else state.requeued.delete(id);
    }
    body.replaceChildren(...rows);
    $("failures").hidden = rows.length === 0;
    $("failures-empty").hidden = rows.length > 0;
  }

  async function retryMessage(id, row, button) {
    button.disabled = true;
    button.textContent = "Retrying…";
    try {
      const message = await api(`/api/v1/messages/${encodeURIComponent(id)}/retry`, { method: "POST" });
      state.requeued.set(id, Date.now());
      row.classList.add("requeued");
      row.querySelector(".status-cell").replaceChildren(badge((message && message.status) || "pending"));
      button.textContent = "Re-queued";
      toast("Message re-queued");
    } catch (error) {
      if (error instanceof AuthError) { askForKey(); return; }
      button.disabled = false;
      button.textContent = "Retry";
      toast(`Retry refused: ${error.message}`, "error");
    }
  }

  // ---- Search and timeline ----------------------------------------------
  // An id opens that message; anything else is a recipient (the list's `to` filter).
  async function findMessages(query) {
    if (!UUID.test(query)) {
      const page = await api(`/api/v1/messages?limit=20&to=${encodeURIComponent(query)}`);
      return page.items;
    }
    try {
      return [await api(`/api/v1/messages/${query}`)];
    } catch (error) {
      if (error.status === 404) return [];
      throw error;
    }
  }

  async function search(query) {
    const results = $("results");
    const empty = $("results-empty");
    try {
      const items = await findMessages(query);
      results.tBodies[0].replaceChildren(...items.map((m) => {
        const row = el("tr", "", el("td", "", fmtTime(m.created_at, { date: true })), el("td", "", badge(m.status)),
          el("td", "", m.type), el("td", "mono", m.to), el("td", "mono", m.id), el("td", "num", m.attempts));
        row.dataset.id = m.id;
        row.addEventListener("click", () => openMessage(m.id));
        return row;
      }));
      results.hidden = items.length === 0;
      empty.hidden = items.length > 0;
      empty.textContent = `No message found for “${query}”.`;
      if (items.length === 1) openMessage(items[0].id);
    } catch (error) {
      if (error instanceof AuthError) { askForKey(); return; }
      toast(`Search failed: ${error.message}`, "error");
    }
  }

  function openMessage(id) {
    state.openId = id;
    $("drawer").hidden = false;
    $("drawer").dataset.id = id;
    refreshTimeline();
  }

  async function refreshTimeline() {
    const id = state.openId;
    if (!id) return;
    const path = `/api/v1/messages/${encodeURIComponent(id)}`;
    const [message, events] = await Promise.all([api(path), api(`${path}/events`)]);
    if (state.openId !== id) return; // another message was opened meanwhile
    const fields = [["Id", el("span", "mono", message.id)], ["Status", badge(message.status)],
      ["Channel", message.type], ["From", message.from], ["To", message.to],
      ["Attempts", message.attempts], ["Provider", message.provider || "–"],
      ["Provider id", message.provider_message_id || "–"], ["Error", errorText(message.error) || "–"],
      ["Created", fmtTime(message.created_at, { date: true })],
      ["Sent", fmtTime(message.sent_at, { date: true })],
      ["Delivered", fmtTime(message.delivered_at, { date: true })]];
    $("detail").replaceChildren(...fields.flatMap(([name, value]) => [el("dt", "", name), el("dd", "", value)]));
    $("timeline").replaceChildren(...events.map((e) => el("li", "",
      el("div", "", badge(e.status), el("span", "when", `${fmtTime(e.at, { ms: true })} · attempt ${e.attempt}`)),
      e.detail ? el("div", "note", e.detail) : null,
      e.error ? el("div", "note error", errorText(e.error)) : null)));
  }

  function closeDrawer() {
    state.openId = null;
    $("drawer").hidden = true;
  }

  // ---- Polling and the API key -----------------------------------------
  async function tick() {
    if (!state.running) return;
    if (document.hidden) { // a background tab costs the server nothing
      state.timer = setTimeout(tick, POLL_MS);
      return;
    }
    try {
      const [stats, failures] = await Promise.all([api("/api/v1/stats"), api(FAILURES_URL)]);
      $("auth").hidden = true;
      $("main").hidden = false;
      renderStats(stats);
      renderFailures(failures.items);
      if (state.openId) await refreshTimeline().catch(() => {});
      setConnection("live", "Live");
      $("updated").textContent = `Updated ${fmtTime(new Date().toISOString())}`;
    } catch (error) {
      if (error instanceof AuthError) { askForKey(); return; }
      setConnection("down", error.message.startsWith("503") ? "Degraded" : "Offline");
      $("updated").textContent = error.message;
    }
    if (state.running) state.timer = setTimeout(tick, POLL_MS);
  }

  function start() {
    clearTimeout(state.timer);
    state.running = true;
    $("signout").hidden = !sessionStorage.getItem(KEY_STORE);
    tick();
  }

  function askForKey(message) {
    state.running = false;
    clearTimeout(state.timer);
    const hadKey = sessionStorage.getItem(KEY_STORE);
    sessionStorage.removeItem(KEY_STORE);
    $("main").hidden = true;
    closeDrawer();
    $("auth").hidden = false;
    $("signout").hidden = true;
    setConnection("wait", "Key needed");
    const error = $("auth-error");
    error.textContent = message !== undefined ? message : (hadKey ? "That key was refused." : "");
    error.hidden = !error.textContent;
    $("auth-key").focus();
  }

  $("auth-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("auth-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("auth-key").value = "";
    start();
  });
  $("signout").addEventListener("click", () => askForKey(""));
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const query = $("search-q").value.trim();
    if (query) search(query);
  });
  $("drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDrawer(); });
  window.addEventListener("resize", () => { if (!$("main").hidden) drawChart(); });
  start();
})();
