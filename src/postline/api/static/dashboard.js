// Postline operations dashboard: polls /api/v1/stats and /api/v1/stats/activity
// and redraws in place. Every value from the server is put in the DOM as text
// (never innerHTML): message fields are user data.
"use strict";

(() => {
  const view = window.PostlineView;
  const POLL_MS = 1500;
  const KEEP_SETTLED_MS = 8000; // a retried row stays (with its new status) this long after it settles
  const ARM_MS = 4000; // a Cancel click must be confirmed within this
  const KEY_STORE = "postline.apiKey";
  const PROBLEM_URLS = ["/api/v1/messages?status=failed&limit=20",
    "/api/v1/messages?status=undelivered&limit=20"];
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  const { STATUSES, el, cell, badge, when, errorText, fmtInt, fmtRate, fmtAge, fmtMs } = view;
  const OPEN = new Set(["scheduled", "pending", "sending", "retrying"]);
  const CANCELLABLE = new Set(["scheduled", "pending", "retrying"]);
  const CHANNEL_STREAMS = ["message_queue:sms", "message_queue:mms",
    "message_queue:whatsapp", "message_queue:email"];

  const $ = (id) => document.getElementById(id);
  const state = {
    activity: null,
    requeued: new Map(), // id -> {message, settled}: retried here, shown until it settles
    openId: null,
    message: null, // the drawer's message
    running: false,
    timer: null,
    toastTimer: null,
    armTimer: null,
    busy: false,
    again: false,
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
  const messagePath = (id) => `/api/v1/messages/${encodeURIComponent(id)}`;

  const last = (counts) => counts[counts.length - 1] || 0;

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

  // ---- Stats and activity -------------------------------------------------
  function renderStats(stats, activity) {
    const q = stats.queues;
    const backlog = CHANNEL_STREAMS.reduce((sum, s) => sum + (q[s] ? q[s].depth : 0), 0);
    const inflight = stats.workers.reduce((sum, w) => sum + w.inflight, 0);
    $("kpi-backlog").textContent = fmtInt(backlog);
    $("kpi-delayed").textContent = fmtInt(q["message_queue:retry"] ? q["message_queue:retry"].depth : 0);
    $("kpi-workers").textContent = fmtInt(stats.workers.length);
    $("kpi-workers").classList.toggle("bad", stats.workers.length === 0);
    $("kpi-inflight").textContent = `live · ${fmtInt(inflight)} in flight`;
    $("kpi-dead").textContent = fmtInt(activity.dead_letters);
    $("kpi-dead").classList.toggle("bad", activity.dead_letters > 0);

    const deepest = Math.max(1, ...Object.values(q).map((n) => n.depth));
    $("queues").tBodies[0].replaceChildren(...Object.entries(q).map(([stream, n]) => {
      const bar = el("div", stream === "message_queue:dead" ? "bar bar-dead" : "bar", el("span"));
      bar.firstChild.style.width = `${(100 * n.depth) / deepest}%`;
      const name = stream === "message_queue:dead" ? el("span", "muted", " · every dead-lettering") : null;
      return el("tr", "", el("td", "", el("span", "mono", stream), name, bar),
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
      el("td", "mono name", w.name), el("td", "", when(w.last_heartbeat)),
      el("td", "num", fmtInt(w.inflight)))));
    $("workers").hidden = stats.workers.length === 0;
    $("workers-empty").hidden = stats.workers.length > 0;
    view.sending(stats, $);
  }

  function renderActivity(a) {
    const step = a.step_seconds;
    $("kpi-sent").textContent = fmtRate(a.now.sent_per_second);
    $("kpi-sent-note").textContent = `last ${step} s · ${fmtInt(a.total.sent.reduce((s, c) => s + c, 0))} in 10 min`;
    $("kpi-failed").textContent = fmtRate(a.now.failed_per_second);
    $("kpi-failed").classList.toggle("bad", a.now.failed_per_second > 0);
    $("kpi-retried").textContent = `last ${step} s · retried ${fmtRate(a.now.retried_per_second)} / s`;
    $("kpi-oldest").textContent = fmtAge(a.oldest_pending_seconds);
    $("kpi-oldest").classList.toggle("bad", a.oldest_pending_seconds >= 300);

    $("channels").tBodies[0].replaceChildren(...Object.entries(a.channels).map(([channel, s]) => {
      const row = el("tr", "", el("td", "", channel),
        el("td", "num", fmtRate(last(s.sent) / step)), el("td", "num", fmtRate(last(s.failed) / step)),
        el("td", "num", fmtRate(last(s.retried) / step)), el("td", "hide-narrow", view.spark(s.sent)));
      row.dataset.channel = channel;
      return row;
    }));

    $("providers-note").textContent = `rates: last ${step} s · errors and latency: last ${a.attempts_window_seconds} s`;
    $("providers").tBodies[0].replaceChildren(...Object.entries(a.provider_health).map(([name, h]) => {
      const series = a.providers[name] || { sent: [0] };
      const errors = h.error_ratio === null ? "–"
        : `${(100 * h.error_ratio).toFixed(h.error_ratio < 0.1 && h.error_ratio > 0 ? 1 : 0)} % (${fmtInt(h.errors)}/${fmtInt(h.attempts)})`;
      const row = el("tr", "", el("td", "", name),
        el("td", "num", fmtRate(last(series.sent) / step)),
        el("td", h.errors > 0 ? "num bad" : "num", errors),
        el("td", "num", h.latency_ms ? fmtMs(h.latency_ms.p50) : "–"),
        el("td", "num", h.latency_ms ? fmtMs(h.latency_ms.p95) : "–"));
      row.dataset.provider = name;
      return row;
    }));
    view.throughput($("chart"), a);
  }

  // ---- Failed and undelivered ---------------------------------------------
  function problemRow(message, retried) {
    const row = el("tr", retried ? "requeued" : "",
      cell("When", "", when(message.updated_at)),
      cell("Status", "status-cell", badge(message.status), retried ? el("span", "muted", " retried") : null),
      cell("Channel", "", message.type),
      cell("To", "mono", message.to),
      cell("Error", "wrap", errorText(message.error) || "–"),
      cell("Attempts", "num", message.attempts),
      cell("", "num action"));
    if (message.status === "failed" && !retried) {
      const retry = el("button", "btn btn-small", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => retryMessage(message.id, retry));
      row.lastChild.append(retry);
    }
    row.dataset.id = message.id;
    row.dataset.version = `${message.status} ${message.updated_at} ${retried}`;
    row.addEventListener("click", (event) => {
      if (!event.target.closest("button")) openMessage(message.id);
    });
    return row;
  }

  async function refreshRequeued() {
    await Promise.all([...state.requeued].map(async ([id, entry]) => {
      try {
        entry.message = await api(messagePath(id));
      } catch (error) {
        if (error instanceof AuthError) throw error;
        return; // shown as it was; tried again next time
      }
      if (entry.message.status === "failed") state.requeued.delete(id); // back in the failed list
      else if (!OPEN.has(entry.message.status)) {
        entry.settled = entry.settled || Date.now();
        if (Date.now() - entry.settled > KEEP_SETTLED_MS) state.requeued.delete(id);
      }
    }));
  }

  function renderProblems(lists) {
    const byId = new Map();
    for (const message of lists.flat()) byId.set(message.id, { message, retried: false });
    for (const [id, entry] of state.requeued) {
      const listed = byId.get(id);
      if (!listed || listed.message.updated_at <= entry.message.updated_at) byId.set(id, { message: entry.message, retried: true });
    }
    const items = [...byId.values()]
      .sort((a, b) => (a.message.updated_at < b.message.updated_at ? 1 : -1)).slice(0, 25);
    const body = $("failures").tBodies[0];
    const existing = new Map([...body.rows].map((row) => [row.dataset.id, row]));
    body.replaceChildren(...items.map(({ message, retried }) => {
      const row = existing.get(message.id);
      // Unchanged: keep the row (and a button being clicked) in place.
      return row && row.dataset.version === `${message.status} ${message.updated_at} ${retried}`
        ? row : problemRow(message, retried);
    }));
    $("failures").hidden = items.length === 0;
    $("failures-empty").hidden = items.length > 0;
  }

  async function retryMessage(id, button) {
    if (button) { button.disabled = true; button.textContent = "Retrying…"; }
    try {
      const message = await api(`${messagePath(id)}/retry`, { method: "POST" });
      state.requeued.set(id, { message, settled: null });
      toast("Message re-queued");
      refreshNow();
    } catch (error) {
      if (error instanceof AuthError) { askForKey(); return; }
      if (button) { button.disabled = false; button.textContent = "Retry"; }
      toast(`Retry refused: ${error.message}`, "error");
    }
  }

  async function cancelMessage(id) {
    try {
      await api(`${messagePath(id)}/cancel`, { method: "POST" });
      toast("Message cancelled");
      refreshNow();
    } catch (error) {
      if (error instanceof AuthError) { askForKey(); return; }
      toast(`Cancel refused: ${error.message}`, "error");
    }
  }

  // ---- Search and the message drawer --------------------------------------
  // An id opens that message; anything else is a recipient (the list's `to` filter).
  async function findMessages(query) {
    if (!UUID.test(query)) {
      const page = await api(`/api/v1/messages?limit=20&to=${encodeURIComponent(query)}`);
      return page.items;
    }
    try {
      return [await api(messagePath(query))];
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
        const row = el("tr", "", cell("Created", "", when(m.created_at, { date: true })),
          cell("Status", "", badge(m.status)), cell("Channel", "", m.type), cell("To", "mono", m.to),
          cell("Id", "mono", m.id), cell("Attempts", "num", m.attempts));
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
    state.message = null;
    $("drawer").hidden = false;
    $("drawer").dataset.id = id;
    refreshDrawer().catch((error) => toast(`Could not load the message: ${error.message}`, "error"));
  }

  function renderMessage(m) {
    const [detail, content] = view.messageFields(m);
    $("detail").replaceChildren(...detail);
    $("content").replaceChildren(...content);
    const retry = $("drawer-retry");
    const cancel = $("drawer-cancel");
    retry.disabled = m.status !== "failed";
    cancel.disabled = !CANCELLABLE.has(m.status);
    if (cancel.disabled) disarm();
    $("actions-note").textContent = retry.disabled && cancel.disabled
      ? (m.status === "sending" ? "being sent now"
        : `${m.status}: Retry is for a failed message, Cancel for one not sent yet`) : "";
  }

  async function refreshDrawer() {
    const id = state.openId;
    if (!id) return;
    const [message, events] = await Promise.all([api(messagePath(id)), api(`${messagePath(id)}/events`)]);
    if (state.openId !== id) return; // another message was opened meanwhile
    state.message = message;
    renderMessage(message);
    $("timeline").replaceChildren(...events.map((e) => el("li", "",
      el("div", "", badge(e.status), el("span", "when", when(e.at, { ms: true }), ` · attempt ${e.attempt}`)),
      e.detail ? el("div", "note", e.detail) : null,
      e.error ? el("div", "note error", errorText(e.error)) : null)));
  }

  function disarm() {
    clearTimeout(state.armTimer);
    const cancel = $("drawer-cancel");
    delete cancel.dataset.armed;
    cancel.textContent = "Cancel";
  }

  function closeDrawer() {
    state.openId = null;
    disarm();
    $("drawer").hidden = true;
  }

  // ---- Polling and the API key -----------------------------------------
  async function poll() {
    const [stats, activity, ...problems] = await Promise.all([api("/api/v1/stats"),
      api("/api/v1/stats/activity"), ...PROBLEM_URLS.map((url) => api(url))]);
    await refreshRequeued();
    $("auth").hidden = true;
    $("main").hidden = false;
    state.activity = activity;
    renderStats(stats, activity);
    renderActivity(activity);
    renderProblems(problems.map((page) => page.items));
    if (state.openId) await refreshDrawer().catch(() => {});
  }

  async function tick() {
    if (!state.running) return;
    if (state.busy) { state.again = true; return; } // one reading at a time
    state.busy = true;
    clearTimeout(state.timer);
    if (!document.hidden) { // a background tab costs the server nothing
      try {
        await poll();
        setConnection("live", "Live");
        $("updated").textContent = `Updated ${view.time(new Date().toISOString())}`;
      } catch (error) {
        if (error instanceof AuthError) { state.busy = false; askForKey(); return; }
        setConnection("down", error.message.startsWith("503") ? "Degraded" : "Offline");
        $("updated").textContent = error.message;
      }
    }
    state.busy = false;
    if (state.running) state.timer = setTimeout(tick, state.again ? 0 : POLL_MS);
    state.again = false;
  }
  const refreshNow = () => { if (state.running) tick(); };

  function start() {
    clearTimeout(state.timer);
    state.running = true;
    $("signout").hidden = !sessionStorage.getItem(KEY_STORE);
    $("zone").textContent = `Times are shown in ${view.zoneName()}; hover one for UTC.`;
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
  $("drawer-retry").addEventListener("click", () => {
    if (state.message) retryMessage(state.message.id, null);
  });
  // Cancel asks once more: the first click arms it, a second within ARM_MS cancels.
  $("drawer-cancel").addEventListener("click", () => {
    const cancel = $("drawer-cancel");
    if (!state.message) return;
    if (cancel.dataset.armed) { disarm(); cancelMessage(state.message.id); return; }
    cancel.dataset.armed = "true";
    cancel.textContent = "Click again to cancel";
    state.armTimer = setTimeout(disarm, ARM_MS);
  });
  $("drawer-close").addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => { if (event.key === "Escape") closeDrawer(); });
  window.addEventListener("resize", () => { if (state.activity && !$("main").hidden) view.throughput($("chart"), state.activity); });
  start();
})();
