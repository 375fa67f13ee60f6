// Blueque dashboard: follows the page's event stream (one EventSource per page) and keeps the
// view current. No framework, no build step, no CDN. Every value from Redis is set as text
// (textContent, attributes), never parsed as HTML. The server sends a snapshot first, then
// only what changed: `state` (a queue's stats and workers, re-read from Redis), `event` (a
// protocol event), `config`, `spark`, `queues` and `scaling`.
"use strict";

(() => {
  const body = document.body;
  const meta = (name) => (document.querySelector(`meta[name="${name}"]`) || {}).content || "";
  const prefix = meta("blueque-prefix");
  const csrf = meta("blueque-csrf");
  const view = body.dataset.view;
  const pageQueue = body.dataset.queue || "";
  const pageTask = body.dataset.task || "";
  const actions = body.dataset.actions === "on";

  const states = {};
  const configs = {};
  const sparks = {};
  let queues = [];
  let scaling = null;
  let clockOffsetMs = 0; // server clock minus the browser's
  let paused = false;

  // -- small helpers -----------------------------------------------------------------------

  const now = () => Date.now() + clockOffsetMs;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function link(path, text) {
    return el("a", { href: prefix + path }, text);
  }

  function taskLink(id) {
    return link(`/tasks/${encodeURIComponent(id)}`, id);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "-";
    seconds = Math.max(0, seconds);
    if (seconds < 10) return `${seconds.toFixed(1)}s`;
    let whole = Math.floor(seconds);
    if (whole < 60) return `${whole}s`;
    let minutes = Math.floor(whole / 60);
    const secs = whole % 60;
    if (minutes < 60) return `${minutes}m${String(secs).padStart(2, "0")}s`;
    let hours = Math.floor(minutes / 60);
    minutes %= 60;
    if (hours < 24) return `${hours}h${String(minutes).padStart(2, "0")}m`;
    const days = Math.floor(hours / 24);
    hours %= 24;
    return `${days}d${String(hours).padStart(2, "0")}h`;
  }

  const ms = (iso) => (iso ? Date.parse(iso) : NaN);

  function localTime(iso) {
    const t = ms(iso);
    return Number.isNaN(t) ? "" : new Date(t).toLocaleString();
  }

  // A cell whose text the ticker keeps current: the time since `sinceMs`.
  function ticking(sinceMs, suffix, attrs) {
    const cell = el("td", Object.assign({ class: "n", dataset: { since: String(sinceMs), suffix: suffix || "" } }, attrs || {}));
    tickCell(cell);
    return cell;
  }

  function tickCell(node) {
    const since = Number(node.dataset.since);
    node.textContent = Number.isNaN(since) || !node.dataset.since ? "-" : duration((now() - since) / 1000) + (node.dataset.suffix || "");
  }

  function tick() {
    document.querySelectorAll("[data-since]").forEach(tickCell);
    const runtime = document.getElementById("t-runtime");
    if (runtime) {
      const started = ms(runtime.dataset.started);
      const finished = ms(runtime.dataset.finished);
      runtime.textContent = Number.isNaN(started) ? "" : duration(((Number.isNaN(finished) ? now() : finished) - started) / 1000);
    }
  }

  // Progress as a fraction 0..1 when it reads as one: a number (0..1, or a percentage), or an
  // object with percent, fraction, or done/current and total.
  function fraction(progress) {
    if (typeof progress === "number") return progress <= 1 ? progress : progress / 100;
    if (progress && typeof progress === "object") {
      if (typeof progress.percent === "number") return progress.percent / 100;
      if (typeof progress.fraction === "number") return progress.fraction;
      const done = typeof progress.done === "number" ? progress.done : progress.current;
      if (typeof done === "number" && typeof progress.total === "number" && progress.total > 0) return done / progress.total;
    }
    return null;
  }

  function progressText(progress) {
    if (progress === null || progress === undefined) return "";
    const text = typeof progress === "string" ? progress : JSON.stringify(progress);
    return text.length > 80 ? text.slice(0, 79) + "…" : text;
  }

  function progressCell(progress) {
    const f = fraction(progress);
    const cell = el("td", { class: "progress" });
    if (f !== null) cell.append(el("progress", { max: "1", value: String(Math.min(1, Math.max(0, f))) }), " ");
    cell.append(el("span", { class: "ptext" }, progressText(progress)));
    return cell;
  }

  function notice(text, isError) {
    const p = document.getElementById("notice");
    if (!p) return;
    p.textContent = text;
    p.className = isError ? "notice error" : "notice";
    p.hidden = !text;
  }

  function sparkline(values, cls) {
    const ns = "http://www.w3.org/2000/svg";
    const width = 120;
    const height = 22;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("class", `spark ${cls}`);
    const top = Math.max(1, ...values);
    const step = values.length > 1 ? width / (values.length - 1) : width;
    const points = values.map((v, i) => `${(i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.join(" "));
    svg.append(line);
    const title = document.createElementNS(ns, "title");
    const total = values.reduce((a, b) => a + b, 0);
    title.textContent = `${total} in the last hour, peak ${Math.max(0, ...values)} a minute`;
    svg.append(title);
    return svg;
  }

  function replaceRows(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  // -- views -------------------------------------------------------------------------------

  function workerCounts(workers) {
    const counts = { busy: 0, idle: 0, draining: 0 };
    for (const w of workers || []) {
      if (w.state === "busy" || w.state === "reserved") counts.busy += 1;
      else if (w.state === "idle") counts.idle += 1;
      if (w.draining) counts.draining += 1;
    }
    return counts;
  }

  function renderOverview() {
    const tbody = document.querySelector("#queues tbody");
    if (!tbody) return;
    const names = [...new Set([...queues, ...Object.keys(states)])].sort();
    replaceRows(tbody, names.map((name) => {
      const state = states[name] || {};
      const s = state.stats;
      const counts = workerCounts(state.workers);
      const cells = [el("td", {}, link(`/queues/${encodeURIComponent(name)}`, name))];
      if (!s) {
        cells.push(el("td", { colspan: "11", class: "error" }, state.error || "reading…"));
        return el("tr", { dataset: { queue: name } }, ...cells);
      }
      for (const n of [s.pending, s.scheduled, s.reserved, s.running, s.workers, counts.busy, counts.idle, s.draining]) {
        cells.push(el("td", { class: "n" }, n));
      }
      const age = s.oldest_pending_age_s;
      cells.push(age === null || age === undefined ? el("td", { class: "n" }, "-") : ticking((state.readAt || now()) - age * 1000, ""));
      const spark = sparks[name];
      cells.push(el("td", {}, spark ? sparkline(spark.complete, "ok") : ""));
      cells.push(el("td", {}, spark ? sparkline(spark.failed, "bad") : ""));
      const row = el("tr", { dataset: { queue: name } }, ...cells);
      if (state.error) row.classList.add("stale");
      return row;
    }));
  }

  function cancelButton(id, requested) {
    if (!actions) return "";
    if (requested) return el("span", { class: "hint" }, "cancelling…");
    return el("button", { type: "button", dataset: { action: "cancel", task: id } }, "cancel");
  }

  function renderRunning() {
    const tbody = document.querySelector("#running tbody");
    const state = states[pageQueue];
    if (!tbody || !state) return;
    const s = state.stats;
    const summary = document.getElementById("summary");
    if (summary) {
      summary.textContent = s
        ? `${s.running} running, ${s.reserved} reserved, ${s.pending} pending, ${s.scheduled} scheduled; ${s.workers} workers (${s.draining} draining)${state.error ? " — " + state.error : ""}`
        : state.error || "";
    }
    const maxAttempts = (configs[pageQueue] || {}).max_attempts;
    const busy = (state.workers || []).filter((w) => w.task);
    replaceRows(tbody, busy.map((w) => el("tr", { dataset: { task: w.task, worker: w.id } },
      el("td", {}, taskLink(w.task)),
      el("td", {}, w.id),
      w.task_started_at ? ticking(ms(w.task_started_at), "", { class: "n runtime" }) : el("td", { class: "n" }, "reserved"),
      progressCell(w.progress),
      el("td", { class: "n attempt" }, w.attempts === null || w.attempts === undefined ? "-" : `${w.attempts}${maxAttempts ? ` (lost ${w.losses || 0} of ${maxAttempts})` : ""}`),
      el("td", {}, cancelButton(w.task, w.cancel_requested)),
    )));
    const none = document.getElementById("none-running");
    if (none) none.hidden = busy.length > 0;
  }

  const recent = {};

  function renderWorkers() {
    const tbody = document.querySelector("#workers tbody");
    const state = states[pageQueue];
    if (!tbody || !state) return;
    const workers = state.workers || [];
    replaceRows(tbody, workers.map((w) => {
      const recentCell = el("td", { class: "recent" });
      for (const t of (recent[w.id] || []).slice(0, 5)) {
        recentCell.append(el("span", { class: `st ${t.state}` }, taskLink(t.id), ` ${t.state}`), " ");
      }
      return el("tr", { dataset: { worker: w.id } },
        el("td", {}, w.id),
        el("td", { class: `st ${w.state}` }, w.state + (w.draining && w.state !== "draining" ? " (draining)" : "") + (w.alive ? "" : " (heartbeat expired)")),
        el("td", {}, w.task ? taskLink(w.task) : ""),
        w.task_started_at ? ticking(ms(w.task_started_at), "") : el("td", { class: "n" }, "-"),
        w.heartbeat_at ? ticking(ms(w.heartbeat_at), " ago") : el("td", { class: "n" }, "-"),
        el("td", {}, w.pod || ""),
        el("td", {}, `${w.host || ""}${w.pid ? " / " + w.pid : ""}`),
        recentCell,
      );
    }));
    const none = document.getElementById("none-workers");
    if (none) none.hidden = workers.length > 0;
  }

  function renderConfig() {
    const config = configs[pageQueue];
    if (!config) return;
    document.querySelectorAll("#config tr[data-field]").forEach((row) => {
      const cell = row.querySelector(".value");
      const value = config.error ? config.error : config[row.dataset.field];
      cell.textContent = value === undefined ? "" : String(value);
    });
  }

  // -- the feed ----------------------------------------------------------------------------

  function feedMatches(row) {
    const q = document.getElementById("f-queue").value;
    const e = document.getElementById("f-event").value;
    const text = document.getElementById("f-text").value.trim();
    return (!q || row.dataset.queue === q) && (!e || row.dataset.event === e) &&
      (!text || (row.dataset.task || "").includes(text) || (row.dataset.worker || "").includes(text));
  }

  function feedQueues() {
    const select = document.getElementById("f-queue");
    if (!select) return;
    const have = new Set([...select.options].map((o) => o.value));
    for (const name of queues) if (!have.has(name)) select.append(el("option", { value: name }, name));
  }

  function eventRow(event, withQueue) {
    const cells = [el("td", { class: "time" }, new Date(event.ts).toLocaleTimeString())];
    if (withQueue) cells.push(el("td", {}, event.queue));
    cells.push(el("td", { class: `ev ${event.event}` }, event.event));
    if (withQueue) cells.push(el("td", {}, event.task ? taskLink(event.task) : ""));
    cells.push(el("td", {}, event.state || ""), el("td", {}, event.worker || ""));
    return el("tr", { dataset: { queue: event.queue, event: event.event, task: event.task || "", worker: event.worker || "" } }, ...cells);
  }

  function onFeedEvent(event) {
    if (paused) return;
    const tbody = document.querySelector("#feed tbody");
    const row = eventRow(event, true);
    row.hidden = !feedMatches(row);
    tbody.prepend(row);
    while (tbody.rows.length > 500) tbody.lastElementChild.remove();
  }

  // -- one task ----------------------------------------------------------------------------

  let taskFetch = null;

  function refreshTask() {
    clearTimeout(taskFetch);
    taskFetch = setTimeout(async () => {
      const r = await fetch(`${prefix}/api/tasks/${encodeURIComponent(pageTask)}`, { credentials: "same-origin" });
      if (!r.ok) return;
      const t = await r.json();
      const set = (id, value) => { const n = document.getElementById(id); if (n) n.textContent = value === null || value === undefined ? "" : String(value); };
      set("t-state", t.state);
      set("t-attempts", t.attempts);
      set("t-retries", t.retries);
      set("t-worker", t.worker);
      for (const [id, value] of [["t-started", t.started_at], ["t-finished", t.finished_at]]) {
        const n = document.getElementById(id);
        if (n) { n.dataset.time = value || ""; n.textContent = localTime(value); }
      }
      const runtime = document.getElementById("t-runtime");
      if (runtime) { runtime.dataset.started = t.started_at || ""; runtime.dataset.finished = t.finished_at || ""; }
      showTaskProgress(t.progress);
      const result = document.getElementById("t-result");
      if (result) result.textContent = t.result === null || t.result === undefined ? "" : (typeof t.result === "string" ? t.result : JSON.stringify(t.result, null, 2));
      const finished = ["complete", "failed", "cancelled"].includes(t.state);
      document.querySelectorAll('button[data-action="cancel"]').forEach((b) => { b.hidden = finished; });
      document.querySelectorAll('button[data-action="retry"]').forEach((b) => { b.hidden = !["failed", "cancelled"].includes(t.state); });
      if (t.error && !document.getElementById("t-traceback")) document.getElementById("t-changed").hidden = false;
      tick();
    }, 150);
  }

  function showTaskProgress(progress) {
    const bar = document.getElementById("t-bar");
    const text = document.getElementById("t-progress");
    if (!bar || !text) return;
    const f = fraction(progress);
    bar.hidden = f === null;
    if (f !== null) bar.value = Math.min(1, Math.max(0, f));
    text.textContent = progressText(progress);
  }

  function onTaskEvent(event) {
    if (event.task !== pageTask) return;
    const tbody = document.querySelector("#task-events tbody");
    tbody.append(el("tr", {}, el("td", { class: "time" }, new Date(event.ts).toLocaleTimeString()),
      el("td", { class: `ev ${event.event}` }, event.event), el("td", {}, event.state || ""), el("td", {}, event.worker || "")));
    refreshTask();
  }

  // -- finished tasks ----------------------------------------------------------------------

  async function onFinishedEvent(event) {
    const table = document.getElementById("finished");
    if (!table || event.event !== table.dataset.state) return;
    const r = await fetch(`${prefix}/api/tasks/${encodeURIComponent(event.task)}`, { credentials: "same-origin" });
    if (!r.ok) return;
    const t = await r.json();
    const wanted = table.dataset.errorType;
    if (wanted && (!t.error || t.error.type !== wanted)) return;
    if (table.querySelector(`tr[data-task="${CSS.escape(t.id)}"]`)) return;
    const one = (v) => (v === null || v === undefined ? "" : (typeof v === "string" ? v : JSON.stringify(v)));
    const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);
    const detail = t.state === "complete" ? one(t.result) : (t.error ? `${t.error.type || "Error"}: ${t.error.message || ""}` : "");
    const retry = actions && ["failed", "cancelled"].includes(t.state) ? el("button", { type: "button", dataset: { action: "retry", task: t.id } }, "retry") : "";
    table.tBodies[0].prepend(el("tr", { dataset: { task: t.id }, class: "new" },
      el("td", {}, taskLink(t.id)), el("td", { class: "time" }, localTime(t.finished_at)), el("td", {}, t.worker || ""),
      el("td", { class: "n" }, t.attempts), el("td", { class: "clip" }, clip(detail, 200)), el("td", { class: "clip" }, clip(one(t.parameters), 200)), el("td", {}, retry)));
  }

  // -- scaling: replicas against desired over time, over pending and running -----------------

  function chart(bq) {
    const ns = "http://www.w3.org/2000/svg";
    const width = 900;
    const height = 190;
    const pad = { left: 34, right: 10, top: 10, bottom: 22 };
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("class", "chart");
    const rows = bq.history || [];
    const events = (bq.events || []).filter((e) => e.time_ms);
    const t0 = Math.min(...rows.map((r) => r[0]), ...events.map((e) => e.time_ms), now());
    const t1 = Math.max(now(), t0 + 1000);
    let top = 1;
    for (const r of rows) for (const v of r.slice(1)) if (typeof v === "number") top = Math.max(top, v);
    const x = (t) => pad.left + ((t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
    const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
    const add = (tag, attrs, text) => {
      const node = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
      if (text !== undefined) node.textContent = text;
      svg.append(node);
      return node;
    };
    add("line", { x1: pad.left, y1: y(0), x2: width - pad.right, y2: y(0), stroke: "#d8dee6" });
    add("text", { x: 2, y: y(top) + 4 }, String(top));
    add("text", { x: 2, y: y(0) }, "0");
    add("text", { x: pad.left, y: height - 6 }, new Date(t0).toLocaleTimeString());
    add("text", { x: width - pad.right - 60, y: height - 6 }, new Date(t1).toLocaleTimeString());
    for (const e of events) {
      if (!["ScaledUp", "ScaledDown", "WorkerReaped"].includes(e.reason)) continue;
      const line = add("line", { x1: x(e.time_ms), y1: pad.top, x2: x(e.time_ms), y2: y(0), class: "scale-event", "data-reason": e.reason });
      const title = document.createElementNS(ns, "title");
      title.textContent = `${e.reason}: ${e.message}`;
      line.append(title);
    }
    // Steps: a value holds until the next sample.
    const series = [["pending", 3], ["running", 4], ["desired", 2], ["replicas", 1]];
    for (const [name, index] of series) {
      const points = [];
      let last = null;
      for (const r of rows) {
        const v = r[index];
        if (typeof v !== "number") continue;
        if (last !== null) points.push(`${x(r[0]).toFixed(1)},${y(last).toFixed(1)}`);
        points.push(`${x(r[0]).toFixed(1)},${y(v).toFixed(1)}`);
        last = v;
      }
      if (last !== null) points.push(`${x(t1).toFixed(1)},${y(last).toFixed(1)}`);
      if (points.length) add("polyline", { points: points.join(" "), class: name, "data-series": name });
    }
    return svg;
  }

  function renderScaling() {
    const root = document.getElementById("scaling");
    if (!root || !scaling) return;
    const parts = [];
    if (!scaling.enabled) {
      parts.push(el("p", { class: "hint" }, `The scaling view is off: ${scaling.why || ""}`));
    } else {
      parts.push(el("p", { class: "hint" },
        `BlueQueues read from the ${scaling.source} every ${scaling.interval_s}s; matched to a queue by its claim (the queue's owner is the BlueQueue's UID) and key prefix ${scaling.key_prefix}. History is kept in memory since the dashboard started (${Math.round(scaling.history_s / 60)} min), Events as they were seen.`));
      if (scaling.error) parts.push(el("p", { class: "error" }, scaling.error));
      if (!scaling.bluequeues.length && !scaling.error) parts.push(el("p", { class: "hint" }, "No BlueQueue found."));
    }
    for (const bq of (scaling.enabled ? scaling.bluequeues : [])) {
      const section = el("section", { class: "bluequeue", dataset: { bluequeue: `${bq.namespace}/${bq.name}`, matched: bq.matched ? "yes" : "no" } });
      const title = el("h2", {}, `${bq.namespace}/${bq.name} → `);
      title.append(bq.matched ? link(`/queues/${encodeURIComponent(bq.queue)}`, bq.queue) : bq.queue);
      section.append(title);
      if (!bq.matched) section.append(el("p", { class: "error unmatched" }, `Not this dashboard's queue: ${bq.unmatched}`));
      section.append(el("p", { class: "summary" },
        `replicas ${bq.replicas ?? "-"}, desired ${bq.desired ?? "-"}, pending ${bq.pending ?? "-"}, running ${bq.running ?? "-"}, workers ${bq.workers ?? "-"}`));
      const conditions = el("div", { class: "conditions" });
      for (const c of bq.conditions) {
        const good = (c.type === "Ready" || c.type === "RedisReachable") === (c.status === "True");
        conditions.append(el("span", { class: `condition ${good ? "true" : "bad"}`, title: c.message || c.reason, dataset: { type: c.type, status: c.status } }, `${c.type}=${c.status} (${c.reason})`));
      }
      section.append(conditions);
      if (bq.last_scale_time) {
        section.append(el("p", { class: "last-scale" }, `Last scale ${localTime(bq.last_scale_time)}: ${bq.last_scale_reason || ""}`));
      }
      section.append(el("p", { class: "legend" }, el("span", { class: "replicas" }, "— replicas"), el("span", { class: "desired" }, "- - desired"),
        el("span", { class: "pending" }, "— pending"), el("span", { class: "running" }, "— running"), el("span", { class: "error" }, "| scale or reap")));
      section.append(chart(bq));
      const rows = [...bq.events].reverse().slice(0, 30).map((e) => el("tr", { dataset: { reason: e.reason } },
        el("td", { class: "time" }, localTime(e.time)), el("td", { class: e.type === "Warning" ? "error" : "" }, e.reason), el("td", {}, e.message), el("td", { class: "n" }, e.count)));
      section.append(el("table", { class: "grid events" }, el("thead", {}, el("tr", {}, el("th", {}, "time"), el("th", {}, "event"), el("th", {}, "message"), el("th", { class: "n" }, "count"))), el("tbody", {}, ...rows)));
      parts.push(section);
    }
    root.replaceChildren(...parts);
  }

  // -- the stream --------------------------------------------------------------------------

  function render() {
    if (view === "overview") renderOverview();
    else if (view === "running") renderRunning();
    else if (view === "workers") renderWorkers();
    else if (view === "config") renderConfig();
    else if (view === "scaling") renderScaling();
    else if (view === "feed") feedQueues();
  }

  function setState(doc, serverMs) {
    doc.readAt = serverMs || now();
    states[doc.queue] = doc;
  }

  function onEvent(event) {
    if (view === "feed") onFeedEvent(event);
    else if (view === "task") onTaskEvent(event);
    else if (view === "finished" && event.queue === pageQueue) onFinishedEvent(event);
    if (view === "workers" && event.worker && ["complete", "failed", "cancelled"].includes(event.event)) {
      const mine = recent[event.worker] = recent[event.worker] || [];
      mine.unshift({ id: event.task, state: event.event });
      mine.length = Math.min(mine.length, 5);
    }
  }

  function connect() {
    let scoped = pageQueue && view !== "feed" ? `?queue=${encodeURIComponent(pageQueue)}` : "";
    if (view === "scaling") scoped = "?extra=scaling";
    const source = new EventSource(`${prefix}/events${scoped}`);
    const live = document.getElementById("live");
    const status = (text, on) => { if (live) { live.textContent = text; live.className = on ? "badge on" : "badge off"; } };
    source.onopen = () => status("live", true);
    source.onerror = () => status(source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting", false);
    source.addEventListener("snapshot", (m) => {
      const doc = JSON.parse(m.data);
      clockOffsetMs = doc.server_ms - Date.now();
      queues = doc.queues;
      for (const state of Object.values(doc.states)) setState(state, doc.server_ms);
      Object.assign(configs, doc.config);
      Object.assign(sparks, doc.spark);
      if (doc.scaling) scaling = doc.scaling;
      body.dataset.snapshots = String(Number(body.dataset.snapshots || 0) + 1);
      status("live", true);
      render();
      tick();
    });
    source.addEventListener("state", (m) => { setState(JSON.parse(m.data)); render(); });
    source.addEventListener("config", (m) => { const d = JSON.parse(m.data); configs[d.queue] = d.config; render(); });
    source.addEventListener("spark", (m) => { const d = JSON.parse(m.data); sparks[d.queue] = d; render(); });
    source.addEventListener("queues", (m) => { queues = JSON.parse(m.data).queues; render(); });
    source.addEventListener("scaling", (m) => { scaling = JSON.parse(m.data); render(); });
    source.addEventListener("event", (m) => onEvent(JSON.parse(m.data)));
  }

  // -- actions -----------------------------------------------------------------------------

  async function act(button) {
    const kind = button.dataset.action;
    const id = button.dataset.task;
    let path;
    let payload = {};
    if (kind === "cancel") {
      if (!window.confirm(`Cancel ${id}?`)) return;
      path = `/api/tasks/${encodeURIComponent(id)}/cancel`;
    } else if (kind === "retry") {
      path = `/api/tasks/${encodeURIComponent(id)}/retry`;
    } else if (kind === "bulk-retry") {
      if (!window.confirm(button.textContent + "?")) return;
      path = `/api/queues/${encodeURIComponent(button.dataset.queue)}/retry`;
      payload = { state: button.dataset.state, error_type: button.dataset.errorType || null };
    } else {
      return;
    }
    button.disabled = true;
    try {
      const r = await fetch(prefix + path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Blueque-CSRF": csrf },
        body: JSON.stringify(payload),
      });
      const doc = await r.json();
      if (!r.ok) {
        notice(doc.error || `failed (${r.status})`, true);
        return;
      }
      if (kind === "cancel") notice(`${id}: cancel ${doc.outcome} (now ${doc.state})`);
      else if (kind === "retry") notice(`${id}: back in the queue`);
      else notice(`${doc.retried} task(s) back in the queue`);
      if (kind === "retry") button.closest("tr")?.classList.add("done");
    } catch (err) {
      notice(String(err), true);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (button && actions) act(button);
  });

  // -- start -------------------------------------------------------------------------------

  document.querySelectorAll("[data-time]").forEach((n) => { if (n.dataset.time) n.textContent = localTime(n.dataset.time); });
  if (view === "task") {
    const text = document.getElementById("t-progress");
    if (text && text.textContent.trim()) {
      try { showTaskProgress(JSON.parse(text.textContent)); } catch (_) { /* shown as text */ }
    }
  }
  if (view === "workers") {
    fetch(`${prefix}/api/queues/${encodeURIComponent(pageQueue)}/recent`, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : {}))
      .then((found) => { for (const [w, list] of Object.entries(found)) recent[w] = [...(recent[w] || []), ...list].slice(0, 5); renderWorkers(); });
  }
  if (view === "feed") {
    document.getElementById("filters").addEventListener("input", () => {
      document.querySelectorAll("#feed tbody tr").forEach((row) => { row.hidden = !feedMatches(row); });
    });
    document.getElementById("f-pause").addEventListener("click", (e) => {
      paused = !paused;
      e.target.textContent = paused ? "resume" : "pause";
    });
  }
  if (!["login", "error"].includes(view)) connect();
  setInterval(tick, 1000);
})();
