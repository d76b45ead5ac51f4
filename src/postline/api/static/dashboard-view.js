// Postline dashboard: what it draws from a value, without fetching anything: times
// with their zone, DOM nodes of server values (as text), the drawer's fields and
// the hand-drawn SVG charts (no library: the page loads nothing from outside).
// Loaded before dashboard.js.
"use strict";

window.PostlineView = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---- Times: always with their zone, the date when it is not today -------
  const CLOCK = new Intl.DateTimeFormat("en-GB", {
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23", timeZoneName: "short",
  });
  const DAY = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" });
  const part = (parts, type) => (parts.find((p) => p.type === type) || { value: "" }).value;

  function clock(date, { seconds = true, zone = true } = {}) {
    const parts = CLOCK.formatToParts(date);
    let text = `${part(parts, "hour")}:${part(parts, "minute")}`;
    if (seconds) text += `:${part(parts, "second")}`;
    return zone ? `${text} ${part(parts, "timeZoneName")}` : text;
  }

  function time(iso, { date = false, ms = false } = {}) {
    if (!iso) return "–";
    const d = new Date(iso);
    const parts = CLOCK.formatToParts(d);
    let text = `${part(parts, "hour")}:${part(parts, "minute")}:${part(parts, "second")}`;
    if (ms) text += `.${String(d.getMilliseconds()).padStart(3, "0")}`;
    const today = DAY.format(d) === DAY.format(new Date());
    const day = date || !today ? `${DAY.format(d)} ` : "";
    return `${day}${text} ${part(parts, "timeZoneName")}`;
  }

  function zoneName() {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
    return `${zone} (${part(CLOCK.formatToParts(new Date()), "timeZoneName")})`;
  }

  // ---- Numbers --------------------------------------------------------------
  const fmtInt = (n) => Number(n).toLocaleString("en-US");
  function fmtRate(v) {
    if (v === 0) return "0";
    if (v >= 100) return v.toFixed(0);
    return v >= 10 ? v.toFixed(1) : v.toFixed(2);
  }
  function fmtAge(seconds) {
    if (seconds < 10) return `${seconds.toFixed(1)} s`;
    if (seconds < 60) return `${Math.floor(seconds)} s`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s`;
    return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  }
  const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);

  // ---- DOM: every server value goes in as text, never as HTML -------------
  const STATUSES = ["scheduled", "pending", "sending", "retrying", "sent",
    "delivered", "undelivered", "failed", "cancelled"];
  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }
  function cell(label, className, ...children) {
    const node = el("td", className, ...children);
    node.dataset.label = label; // the column's name, shown beside the value on a narrow screen
    return node;
  }
  const badge = (status) => el("span", `badge s-${STATUSES.includes(status) ? status : "x"}`, status);
  function when(iso, options) {
    const node = el("time", "", time(iso, options));
    if (iso) { node.dateTime = iso; node.title = iso; }
    return node;
  }
  const errorText = (error) => (error ? [error.code, error.message].filter(Boolean).join(": ") : "");

  const pairs = (fields) => fields.filter(([, value]) => value !== undefined)
    .flatMap(([name, value]) => [el("dt", "", name), el("dd", "", value === null || value === "" ? "–" : value)]);

  function attachmentText(a) {
    return typeof a === "string" ? a : `${a.filename} (${a.content_type})`;
  }

  // The drawer's two lists: the message's facts, then what it says.
  function messageFields(m) {
    const optional = (value, shown) => (value ? shown : undefined);
    const detail = pairs([
      ["Id", el("span", "mono", m.id)], ["Status", badge(m.status)], ["Channel", m.type],
      ["From", m.from], ["To", m.to], ["Ordering key", el("span", "mono", m.ordering_key)],
      ["Attempts", m.attempts], ["Provider", m.provider], ["Provider id", m.provider_message_id && el("span", "mono", m.provider_message_id)],
      ["Error", errorText(m.error)], ["Created", when(m.created_at, { date: true })],
      ["Send at", optional(m.send_at, when(m.send_at, { date: true }))],
      ["Next attempt", optional(m.next_attempt_at, when(m.next_attempt_at, { date: true }))],
      ["Sent", when(m.sent_at, { date: true })], ["Delivered", when(m.delivered_at, { date: true })],
      ["Updated", when(m.updated_at, { date: true })], ["Callback", optional(m.callback_url, m.callback_url)],
    ]);
    const metadata = Object.keys(m.metadata || {}).length ? el("pre", "pre", JSON.stringify(m.metadata, null, 2)) : null;
    const content = pairs([
      ["Subject", m.type === "email" ? m.subject : undefined],
      ["Body", m.body ? el("pre", "pre", m.body) : null],
      ["HTML", optional(m.html, el("pre", "pre", m.html))],
      ["Attachments", m.attachments.length ? m.attachments.map(attachmentText).join("\n") : null],
      ["Metadata", metadata],
    ]);
    return [detail, content];
  }

  // ---- SVG ----------------------------------------------------------------
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A y axis of round steps (1, 2 or 5 times a power of ten) from 0 to at
  // least `peak`: every tick is a step further, labelled with the decimals the
  // step needs, so no value is skipped or rounded into its neighbour.
  function axis(peak, ticks = 4) {
    const high = peak > 0 ? peak : 1;
    const raw = high / ticks;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * (1 - 1e-9));
    const count = Math.max(1, Math.ceil(high / step - 1e-9));
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const values = Array.from({ length: count + 1 }, (_, i) => i * step);
    return { top: count * step, step, decimals, values };
  }

  const SERIES = [["sent", "sent"], ["failed", "failed"], ["retried", "retried"]];

  // The throughput chart of an activity reading: one point per bucket, in rates.
  function throughput(box, reading) {
    const width = box.clientWidth;
    const height = box.clientHeight || 220;
    const pad = { left: 44, right: 10, top: 10, bottom: 22 };
    const step = reading.step_seconds;
    const n = reading.points;
    const start = Date.parse(reading.start);
    const rates = Object.fromEntries(SERIES.map(([key]) => [key, reading.total[key].map((c) => c / step)]));
    const scale = axis(Math.max(0, ...Object.values(rates).flat()));
    const inner = width - pad.left - pad.right;
    const edge = (i) => pad.left + (i * inner) / n;
    const x = (i) => edge(i + 0.5);
    const y = (v) => pad.top + (1 - v / scale.top) * (height - pad.top - pad.bottom);
    const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}` });
    for (const v of scale.values) {
      root.append(svg("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }));
      root.append(svg("text", { class: "axis-label axis-y", x: pad.left - 8, y: y(v) + 4, "text-anchor": "end" },
        v.toFixed(scale.decimals)));
    }
    // Clock labels on whole minutes, fewer when narrow.
    const every = (inner < 420 ? 5 : 2) * 60_000;
    for (let i = 0; i <= n; i += 1) {
      const t = start + i * step * 1000;
      if (t % every !== 0 || edge(i) < pad.left + 16 || edge(i) > width - pad.right - 16) continue;
      root.append(svg("line", { class: "tick", x1: edge(i), x2: edge(i), y1: height - pad.bottom, y2: height - pad.bottom + 4 }));
      root.append(svg("text", { class: "axis-label axis-x", x: edge(i), y: height - 5, "text-anchor": "middle" },
        clock(new Date(t), { seconds: false, zone: false })));
    }
    const line = (key) => rates[key].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    root.append(svg("path", { class: "area-sent", d: `M${x(0)},${y(0)} L${line("sent")} L${x(n - 1)},${y(0)} Z` }));
    for (const [key, css] of SERIES) root.append(svg("polyline", { class: `line-${css}`, points: line(key) }));
    // One invisible band per bucket: hovering it names the bucket and its rates.
    for (let i = 0; i < n; i += 1) {
      const from = new Date(start + i * step * 1000);
      const band = svg("rect", { class: "band", x: edge(i), y: pad.top, width: inner / n, height: height - pad.top - pad.bottom });
      const said = SERIES.map(([key]) => `${rates[key][i].toFixed(1)} ${key}/s`).join(", ");
      band.append(svg("title", {}, `${clock(from)} +${step} s: ${said}`));
      root.append(band);
    }
    box.replaceChildren(root);
  }

  // A small line of counts (a channel's sends over the window).
  function spark(counts, width = 120, height = 22) {
    const peak = Math.max(1, ...counts);
    const points = counts.map((c, i) =>
      `${((i + 0.5) * width / counts.length).toFixed(1)},${(height - 1 - (c / peak) * (height - 2)).toFixed(1)}`);
    const root = svg("svg", { class: "spark", width, height, viewBox: `0 0 ${width} ${height}` });
    root.append(svg("polyline", { points: points.join(" ") }));
    return root;
  }

  // Routes, suppressions and paced senders from one /api/v1/stats reading.
  function sending(stats, $) {
    $("routes").tBodies[0].replaceChildren(...Object.entries(stats.routes || {}).map(([name, r]) => {
      const row = el("tr", "", el("td", "", name),
        el("td", r.state === "closed" ? "" : "bad", r.state.replace("_", "-")),
        el("td", r.failed > 0 ? "num bad" : "num",
          r.attempts ? `${Math.round(100 * r.error_rate)} % (${fmtInt(r.failed)}/${fmtInt(r.attempts)})` : "–"));
      row.dataset.route = name;
      return row;
    }));
    const suppressed = stats.suppressions || { total: 0, by_reason: {}, by_channel: {} };
    const channels = Object.entries(suppressed.by_channel).map(([c, n]) => `${c} ${fmtInt(n)}`);
    $("suppressed-total").textContent = suppressed.total ? `${fmtInt(suppressed.total)} · ${channels.join(" · ")}` : "";
    $("suppressed").tBodies[0].replaceChildren(...Object.entries(suppressed.by_reason).map(([reason, n]) =>
      el("tr", "", el("td", "", reason), el("td", "num", fmtInt(n)))));
    $("suppressed").hidden = suppressed.total === 0;
    $("suppressed-empty").hidden = suppressed.total > 0;
    const paced = ((stats.pacing || {}).senders || []).slice(0, 8);
    $("paced").tBodies[0].replaceChildren(...paced.map((p) => el("tr", "",
      el("td", "mono", p.sender, el("span", "muted", ` · ${p.class}`)),
      el("td", "num", fmtInt(p.waiting)), el("td", "num", fmtAge(p.wait_seconds)))));
    $("paced").hidden = paced.length === 0;
    $("paced-empty").hidden = paced.length > 0;
  }

  return { STATUSES, sending, fmtInt, fmtRate, fmtAge, fmtMs, axis, clock, time, zoneName, throughput, spark, el, cell, badge, when, errorText, messageFields };
})();
