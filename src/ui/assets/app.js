// The wvflow dashboard: plain DOM code, no framework and no build step. Every text from the
// server goes into the page as text (never as HTML). The page asks the server every second
// for what changed and updates in place.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;

// The token arrives in the address `wvflow ui` printed; it is kept for this tab only and
// taken out of the address bar.
(function keepToken() {
  const params = new URLSearchParams(location.search);
  const token = params.get("token");
  if (token) {
    sessionStorage.setItem("wvflow-token", token);
    history.replaceState(null, "", location.pathname + (location.hash || "#/runs"));
  }
})();

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const svg = ["svg", "g", "rect", "text", "path", "line", "title"].includes(tag);
  const el = svg ? document.createElementNS(SVG, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value" && !svg) el.value = v;
    else if (k === "checked" && !svg) el.checked = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function stateClass(state) {
  const s = String(state || "pending");
  return "state-" + (s.includes("stale") ? "stale" : s.includes("retrying") ? "retrying" : s.split(" ")[0]);
}

function badge(state) {
  return h("span", { class: "badge " + stateClass(state), "data-state": state }, state);
}

function ms(n) {
  if (n === null || n === undefined) return "";
  if (n < 1000) return n + "ms";
  if (n < 60000) return (n / 1000).toFixed(1) + "s";
  const m = Math.floor(n / 60000);
  return m + "m" + Math.round((n % 60000) / 1000) + "s";
}

// Times come in UTC and are shown so, labelled.
function when(text) {
  return text ? text.replace("T", " ").replace(/\.\d+Z$|Z$/, "") + " UTC" : "";
}

// A time with its own offset (a fire time in the flow's zone), shown as it reads there.
function local(text) {
  return text ? text.replace("T", " ").replace(/([+-]\d\d:\d\d|Z)$/, " ($1)") : "";
}

function elapsed(run) {
  if (!run.started_at) return "";
  // A live run's duration goes on here; any other's is the store's (a stale run's ends at
  // its owner's last heartbeat).
  const live = run.state === "running" || run.state === "running (retrying)";
  if (!live && typeof run.duration_ms === "number") return ms(run.duration_ms);
  const end = run.finished_at ? Date.parse(run.finished_at) : Date.now();
  return ms(Math.max(0, end - Date.parse(run.started_at)));
}

async function api(path) {
  const response = await fetch(path, { cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.status + " " + response.statusText);
  return body;
}

async function act(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "X-Wvflow-Token": sessionStorage.getItem("wvflow-token") || "",
    },
    body: JSON.stringify(body || {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || String(response.status));
  return answer;
}

// replaceChildren that, like h(), flattens lists and leaves out null, undefined and false.
function fill(el, ...children) {
  el.replaceChildren(...children.flat(2).filter((c) => c !== null && c !== undefined && c !== false));
}

function toast(text, bad) {
  const el = document.getElementById("toast");
  el.textContent = text;
  el.className = bad ? "bad" : "";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (el.hidden = true), bad ? 8000 : 3000);
}

function table(headers, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

// ---------- routing and polling ----------

let page = null; // { update(): Promise } of the page shown
let generation = 0;

function route() {
  generation += 1;
  const hash = location.hash || "#/runs";
  const parts = hash.slice(2).split("/").map((p) => {
    try { return decodeURIComponent(p); } catch { return p; }
  });
  document.querySelectorAll("header nav a").forEach((a) =>
    a.classList.toggle("active", a.dataset.nav === parts[0]));
  const main = document.getElementById("main");
  main.replaceChildren();
  if (parts[0] === "runs" && parts[1]) page = runPage(main, parts[1]);
  else if (parts[0] === "flows") page = flowsPage(main);
  else page = runsPage(main);
  tick(generation);
}

async function tick(gen) {
  if (gen !== generation) return;
  const live = document.getElementById("live");
  try {
    await page.update();
    live.className = "";
    live.textContent = "live";
  } catch (e) {
    live.className = "off";
    live.textContent = "offline: " + e.message;
  }
  if (gen === generation) setTimeout(() => tick(gen), POLL_MS);
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", route);

// ---------- runs ----------

function runsPage(main) {
  const flowFilter = h("select", { id: "flow-filter", onchange: () => page.update() },
    h("option", { value: "" }, "all flows"));
  const stateFilter = h("select", { id: "state-filter", onchange: () => page.update() },
    ["", "running", "stale", "success", "failed", "cancelled", "skipped", "continued"].map((s) =>
      h("option", { value: s }, s || "all states")));
  const body = h("tbody", { id: "runs" });
  main.append(
    h("h1", {}, "Runs"),
    h("div", { class: "filters" }, "Flow", flowFilter, "State", stateFilter,
      h("span", { class: "muted", id: "runs-count" })),
    h("div", { class: "panel" }, h("table", {},
      h("thead", {}, h("tr", {}, ["run", "flow", "state", "started", "duration", "run time"]
        .map((t) => h("th", {}, t)))),
      body)));
  const flows = new Set();
  const addFlow = (name) => {
    if (!flows.has(name)) {
      flows.add(name);
      flowFilter.append(h("option", { value: name }, name));
    }
  };
  api("/api/flows").then((d) => d.flows.forEach((f) => addFlow(f.flow))).catch(() => {});
  return {
    async update() {
      const q = new URLSearchParams({ flow: flowFilter.value, state: stateFilter.value });
      const { runs } = await api("/api/runs?" + q);
      runs.forEach((r) => addFlow(r.flow));
      body.replaceChildren(...runs.map((r) => h("tr", { "data-run": r.run_id },
        h("td", { class: "mono" }, h("a", { href: "#/runs/" + encodeURIComponent(r.run_id) }, r.run_id)),
        h("td", {}, r.flow),
        h("td", {}, badge(r.state)),
        h("td", {}, when(r.started_at)),
        h("td", { class: "num" }, elapsed(r)),
        h("td", { class: "mono" }, r.run_time))));
      document.getElementById("runs-count").textContent =
        runs.length ? runs.length + " run(s)" : "no runs yet: start one from Flows";
    },
  };
}

// ---------- one run ----------

function layout(graph) {
  // Columns by longest path from a first stage; rows by plan order within a column.
  const level = new Map();
  for (const s of graph.stages) {
    let l = 0;
    for (const e of s.upstream) if (level.has(e.stage)) l = Math.max(l, level.get(e.stage) + 1);
    level.set(s.stage, l);
  }
  const rows = new Map();
  const pos = new Map();
  for (const s of graph.stages) {
    const l = level.get(s.stage);
    const r = rows.get(l) || 0;
    rows.set(l, r + 1);
    pos.set(s.stage, { x: 16 + l * 190, y: 16 + r * 56 });
  }
  const width = 32 + (Math.max(0, ...level.values()) + 1) * 190;
  const height = 32 + Math.max(1, ...rows.values()) * 56;
  return { pos, width, height };
}

function drawDag(graph, onPick) {
  const { pos, width, height } = layout(graph);
  const svg = h("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "dag" });
  for (const s of graph.stages) {
    const to = pos.get(s.stage);
    for (const e of s.upstream) {
      const from = pos.get(e.stage);
      if (!from) continue;
      const x1 = from.x + 160, y1 = from.y + 20, x2 = to.x, y2 = to.y + 20;
      const mid = (x1 + x2) / 2;
      svg.append(h("path", {
        class: "edge" + (e.requires === "success" ? "" : " unmet"),
        d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      }, h("title", {}, `${e.stage} → ${s.stage} (${e.requires})`)));
    }
  }
  const nodes = new Map();
  for (const s of graph.stages) {
    const p = pos.get(s.stage);
    const sub = h("text", { x: 14, y: 33, class: "sub" }, s.kind);
    const g = h("g", {
      class: "node state-pending", transform: `translate(${p.x},${p.y})`,
      "data-stage": s.stage, "data-state": "pending", onclick: () => onPick(s.stage),
    },
    h("rect", { width: 160, height: 40 }),
    h("rect", { class: "bar", width: 6, height: 40 }),
    h("text", { x: 14, y: 17 }, s.stage.length > 22 ? s.stage.slice(0, 21) + "…" : s.stage),
    sub,
    h("title", {}, s.stage));
    nodes.set(s.stage, { g, sub, kind: s.kind });
    svg.append(g);
  }
  return { svg, nodes };
}

function drawGantt(run) {
  const attempts = [];
  for (const s of run.stages) {
    // A stage without attempts (a query, a wait) is one bar of its own.
    if (!s.history.length && s.started_at) {
      const start = Date.parse(s.started_at);
      const end = s.finished_at ? Date.parse(s.finished_at) : Date.now();
      attempts.push({ stage: s.stage, a: { item: null, attempt: 1, phase: "run", state: s.state }, start, end });
    }
    for (const a of s.history) {
      const start = Date.parse(a.started_at);
      const end = a.duration_ms !== null && a.duration_ms !== undefined
        ? start + a.duration_ms
        : (a.state === "running" ? Date.now() : start);
      attempts.push({ stage: s.stage, a, start, end });
    }
  }
  if (!attempts.length) return h("p", { class: "muted" }, "No attempt has started yet.");
  const t0 = Math.min(...attempts.map((x) => x.start));
  const t1 = Math.max(t0 + 1, ...attempts.map((x) => x.end));
  const stages = [...new Set(attempts.map((x) => x.stage))];
  const labelW = 150, width = 760, rowH = 20;
  const scale = (t) => labelW + ((t - t0) / (t1 - t0)) * (width - labelW - 10);
  const height = 24 + stages.length * rowH;
  const svg = h("svg", { class: "gantt", width: "100%", viewBox: `0 0 ${width} ${height}`, id: "gantt" });
  svg.append(h("text", { x: labelW, y: 12 }, "0"), h("text", { x: width - 60, y: 12 }, ms(t1 - t0)));
  stages.forEach((stage, i) => {
    const y = 18 + i * rowH;
    svg.append(h("text", { x: 0, y: y + 12 }, stage.length > 20 ? stage.slice(0, 19) + "…" : stage),
      h("line", { class: "axis", x1: labelW, x2: width - 10, y1: y + rowH - 2, y2: y + rowH - 2 }));
    for (const x of attempts.filter((x) => x.stage === stage)) {
      const w = Math.max(2, scale(x.end) - scale(x.start));
      const label = `${stage}${x.a.item !== null ? " item " + x.a.item : ""} attempt ${x.a.attempt}` +
        ` (${x.a.phase}): ${x.a.state}, ${ms(x.end - x.start)}`;
      svg.append(h("rect", { class: "bar " + stateClass(x.a.state), x: scale(x.start), y: y + 2, width: w, height: rowH - 6 },
        h("title", {}, label)));
    }
  });
  return svg;
}

function runPage(main, runId) {
  const title = h("h1", {}, "Run ", h("span", { class: "mono" }, runId));
  const actions = h("span", { class: "actions" });
  title.append(actions);
  const facts = h("dl", { class: "kv", id: "facts" });
  const dagBox = h("div", { class: "panel dag", id: "dag-box" }, h("p", { class: "muted" }, "Loading the graph…"));
  const detail = h("div", { class: "panel", id: "stage-detail" },
    h("p", { class: "muted" }, "Click a stage to see its attempts, logs and rows."));
  const gantt = h("div", { class: "panel", id: "timeline" });
  const extra = h("div", { id: "extra" });
  main.append(title, h("div", { class: "grid" },
    h("div", {}, h("h2", {}, "Graph"), dagBox, h("h2", {}, "Timeline"), gantt),
    h("div", {}, h("div", { class: "panel" }, facts), detail, extra)));

  let dag = null;
  let run = null;
  let picked = null;
  let pickedKey = "";
  // The page of the picked stage's attempt logs shown, and what was fetched of it: the
  // lengths of its logs (asked for each second while the stage runs; the text only when they
  // changed) and their text.
  const LOG_PAGE = 20;
  let logPage = 0;
  let logLengths = "";
  let logs = { logs: [], total: 0 };
  // Each showing of the stage counts one; an answer to an earlier one is dropped.
  let showing = 0;

  async function pick(stage) {
    picked = stage;
    pickedKey = "";
    logPage = 0;
    logLengths = "";
    if (dag) for (const [name, n] of dag.nodes) n.g.classList.toggle("selected", name === stage);
    await showStage(true);
  }

  async function showStage(force) {
    if (!picked || !run) return;
    const s = run.stages.find((x) => x.stage === picked);
    if (!s) return;
    const key = s.state + "/" + s.history.length + "/" + s.attempts;
    const live = ["running", "retrying", "queued"].includes(s.state);
    if (!force && key === pickedKey && !live) return;
    pickedKey = key;
    const mine = ++showing;
    const logsOf = `/api/runs/${encodeURIComponent(runId)}/logs?stage=${encodeURIComponent(picked)}` +
      `&offset=${logPage * LOG_PAGE}&limit=${LOG_PAGE}`;
    const lengths = await api(logsOf + "&text=0");
    if (mine !== showing) return;
    const seen = lengths.total + ":" + lengths.logs.map((l) => l.chars + l.state).join(",");
    const [fresh, rows] = await Promise.all([
      force || seen !== logLengths ? api(logsOf) : Promise.resolve(null),
      s.state === "success"
        ? api(`/api/runs/${encodeURIComponent(runId)}/rows?stage=${encodeURIComponent(picked)}&limit=20`).catch(() => null)
        : Promise.resolve(null),
    ]);
    if (picked !== s.stage || mine !== showing) return;
    if (fresh) {
      logs = fresh;
      logLengths = seen;
    }
    const pages = Math.max(1, Math.ceil(logs.total / LOG_PAGE));
    const turn = (by) => async () => {
      logPage = Math.min(pages - 1, Math.max(0, logPage + by));
      await showStage(true);
    };
    const pager = logs.total > LOG_PAGE
      ? h("p", { class: "pager", id: "log-pager" },
        h("button", { class: "secondary", id: "logs-newer", disabled: logPage === 0, onclick: turn(-1) }, "‹"),
        ` attempts ${logPage * LOG_PAGE + 1}–${Math.min(logs.total, (logPage + 1) * LOG_PAGE)} of ${logs.total} `,
        h("button", { class: "secondary", id: "logs-older", disabled: logPage >= pages - 1, onclick: turn(1) }, "›"))
      : null;
    const logText = logs.logs.map((l) =>
      `== ${l.stage}${l.item !== null ? ", item " + l.item : ""}, attempt ${l.attempt}` +
      `${l.phase === "run" ? "" : " (" + l.phase + ")"}: ${l.state} ==\n${l.log}`).join("");
    const children = (run.children || []).filter((c) => c.parent_stage === s.stage);
    fill(detail,
      h("h2", {}, "Stage ", h("span", { class: "mono" }, s.stage), " ", badge(s.state)),
      h("dl", { class: "kv" },
        h("dt", {}, "attempts"), h("dd", {}, s.attempts),
        h("dt", {}, "rows"), h("dd", {}, s.rows),
        h("dt", {}, "duration"), h("dd", {}, ms(s.duration_ms)),
        s.next_attempt_at && [h("dt", {}, "next attempt"), h("dd", {}, when(s.next_attempt_at))],
        s.error && [h("dt", {}, "error"), h("dd", { class: "error" }, s.error)]),
      s.history.length ? table(["phase", "item", "attempt", "state", "exit", "duration", "error"],
        s.history.map((a) => h("tr", {},
          h("td", {}, a.phase), h("td", {}, a.item === null ? "" : a.item), h("td", {}, a.attempt),
          h("td", {}, badge(a.state)), h("td", { class: "exit" }, a.exit_code === null ? "" : a.exit_code),
          h("td", { class: "num" }, ms(a.duration_ms)),
          h("td", { class: "error" }, a.error ? a.error.split("\n").slice(-1)[0] : "")))) : null,
      children.length ? h("p", {}, "Child runs: ", children.map((c) =>
        h("span", {}, h("a", { href: "#/runs/" + encodeURIComponent(c.run_id) }, c.run_id), " ", badge(c.state), " "))) : null,
      h("h2", {}, "Logs"),
      pager,
      h("pre", { id: "stage-logs" }, logText || "(nothing written)"),
      rows ? [h("h2", {}, `Rows (first ${rows.rows.length})`),
        h("div", { class: "dag" }, table(rows.columns, rows.rows.map((r) =>
          h("tr", {}, rows.columns.map((c) => h("td", { class: "mono" },
            r[c] === null ? "null" : typeof r[c] === "object" ? JSON.stringify(r[c]) : String(r[c]))))))),
      ] : null);
  }

  function drawActions() {
    const state = run.state;
    const buttons = [];
    if (state === "running" || state === "running (retrying)") {
      buttons.push(h("button", { class: "danger", id: "cancel", onclick: async (ev) => {
        ev.target.disabled = true;
        try { await act(`/api/runs/${encodeURIComponent(runId)}/cancel`); toast("Cancel requested"); }
        catch (e) { toast(e.message, true); ev.target.disabled = false; }
      } }, "Cancel"));
      const name = h("input", { type: "text", id: "signal-name", placeholder: "signal", size: 10 });
      const value = h("input", { type: "text", id: "signal-value", placeholder: "value (JSON)", size: 10 });
      buttons.push(name, value, h("button", { class: "secondary", id: "send-signal", onclick: async () => {
        let v = value.value.trim();
        try { v = v === "" ? true : JSON.parse(v); } catch { /* a plain text */ }
        try { await act(`/api/runs/${encodeURIComponent(runId)}/signal`, { name: name.value.trim(), value: v }); toast("Signal sent"); }
        catch (e) { toast(e.message, true); }
      } }, "Send signal"));
    } else if (["failed", "cancelled", "running (stale)"].includes(state)) {
      buttons.push(h("button", { id: "resume", onclick: async (ev) => {
        ev.target.disabled = true;
        try { await act(`/api/runs/${encodeURIComponent(runId)}/resume`); toast("Resumed"); }
        catch (e) { toast(e.message, true); ev.target.disabled = false; }
      } }, "Resume"));
    }
    actions.replaceChildren(badge(state), ...buttons);
    actions.dataset.state = state;
  }

  function drawFacts() {
    const link = (id) => id ? h("a", { href: "#/runs/" + encodeURIComponent(id), class: "mono" }, id) : "";
    fill(facts,
      h("dt", {}, "flow"), h("dd", {}, run.flow + (run.version ? " @version(" + run.version + ")" : "")),
      h("dt", {}, "arguments"), h("dd", {}, JSON.stringify(run.args)),
      h("dt", {}, "run time"), h("dd", {}, run.run_time),
      h("dt", {}, "started"), h("dd", {}, when(run.started_at)),
      h("dt", {}, "finished"), h("dd", {}, when(run.finished_at) || "–"),
      h("dt", {}, "duration"), h("dd", {}, elapsed(run)),
      run.reason && [h("dt", {}, "reason"), h("dd", {}, run.reason)],
      run.resumes > 0 && [h("dt", {}, "resumed"), h("dd", {}, run.resumes + " time(s)")],
      run.parent_run && [h("dt", {}, "called by"), h("dd", {}, link(run.parent_run), " (stage " + run.parent_stage + ")")],
      run.jumped_from && [h("dt", {}, "jumped from"), h("dd", {}, link(run.jumped_from))],
      run.continued_from && [h("dt", {}, "continues"), h("dd", {}, link(run.continued_from))],
      run.continued_as && [h("dt", {}, "continued as"), h("dd", {}, link(run.continued_as.run_id), " (" + run.continued_as.state + ")")]);
  }

  function drawExtra() {
    const parts = [];
    if (run.compensations.length) {
      parts.push(h("h2", {}, "Compensations"), h("div", { class: "panel", id: "compensations" },
        table(["stage", "activity", "state", "attempts", "error"], run.compensations.map((c) => h("tr", {},
          h("td", {}, c.stage), h("td", {}, c.activity), h("td", {}, badge(c.state)),
          h("td", { class: "num" }, c.attempts), h("td", { class: "error" }, c.error || ""))))));
    }
    if (run.hooks && run.hooks.length) {
      parts.push(h("h2", {}, "Hooks"), h("div", { class: "panel", id: "hooks" },
        table(["event", "target", "outcome"], run.hooks.map((k) => h("tr", {},
          h("td", {}, h("a", { href: "#", onclick: (ev) => { ev.preventDefault(); showHookLogs(k.event); } }, k.event)),
          h("td", { class: "mono" }, k.target),
          h("td", {}, k.error ? h("span", { class: "error" }, k.error) : badge("success")))))));
    }
    const related = [...(run.children || []).map((c) => ["call", c]), ...(run.jumps || []).map((j) => ["jump", j])];
    if (related.length) {
      parts.push(h("h2", {}, "Child runs and jumps"), h("div", { class: "panel", id: "related" },
        table(["", "run", "flow", "state"], related.map(([kind, r]) => h("tr", {},
          h("td", {}, kind), h("td", {}, h("a", { class: "mono", href: "#/runs/" + encodeURIComponent(r.run_id) }, r.run_id)),
          h("td", {}, r.flow), h("td", {}, badge(r.state)))))));
    }
    fill(extra, parts);
  }

  async function showHookLogs(event) {
    picked = null;
    const logs = await api(`/api/runs/${encodeURIComponent(runId)}/logs?stage=${encodeURIComponent(event)}&limit=200`);
    detail.replaceChildren(h("h2", {}, "Hook ", event),
      h("pre", { id: "stage-logs" }, logs.logs.map((l) => `== attempt ${l.attempt}: ${l.state} ==\n${l.log}`).join("") || "(nothing written)"));
  }

  return {
    async update() {
      if (!dag) {
        const graph = await api(`/api/runs/${encodeURIComponent(runId)}/graph`);
        dag = drawDag(graph, pick);
        dagBox.replaceChildren(dag.svg);
      }
      run = await api(`/api/runs/${encodeURIComponent(runId)}`);
      for (const s of run.stages) {
        const n = dag.nodes.get(s.stage);
        if (!n) continue;
        if (n.g.dataset.state !== s.state) {
          n.g.setAttribute("class", "node " + stateClass(s.state) + (picked === s.stage ? " selected" : ""));
          n.g.dataset.state = s.state;
        }
        const sub = `${n.kind} · ${s.state}${s.attempts > 1 ? " · " + s.attempts + " attempts" : ""}${s.rows ? " · " + s.rows + " rows" : ""}`;
        if (n.sub.textContent !== sub) n.sub.textContent = sub;
      }
      if (actions.dataset.state !== run.state) drawActions();
      drawFacts();
      gantt.replaceChildren(drawGantt(run));
      drawExtra();
      await showStage(false);
    },
  };
}

// ---------- flows ----------

function inputFor(p) {
  const id = "param-" + p.name;
  const d = p.default;
  switch (p.type) {
    case "boolean": return h("input", { type: "checkbox", id, name: p.name, checked: d === true });
    case "int": return h("input", { type: "number", step: 1, id, name: p.name, value: d ?? "" });
    case "float": return h("input", { type: "number", step: "any", id, name: p.name, value: d ?? "" });
    case "date": return h("input", { type: "date", id, name: p.name, value: d ?? "" });
    case "duration": return h("input", { type: "text", id, name: p.name, placeholder: "90s, 2h",
      value: d === null || d === undefined ? "" : (d % 1000 === 0 ? d / 1000 + "s" : d + "ms") });
    default: return h("input", { type: "text", id, name: p.name, value: d ?? "",
      placeholder: p.type === "timestamp" ? "2026-01-31T02:00:00Z" : p.type });
  }
}

function valueOf(p, input) {
  if (p.type === "boolean") return input.checked;
  const text = input.value.trim();
  if (text === "") return undefined;
  if (p.type === "int" || p.type === "float") return Number(text);
  if (text === "null") return null;
  return text;
}

function flowsPage(main) {
  const box = h("div", { id: "flows" });
  main.append(h("h1", {}, "Flows"), box);
  let shape = "";
  const live = new Map(); // flow -> { recent, next }: the parts that change as runs go
  return {
    async update() {
      const data = await api("/api/flows");
      document.getElementById("workspace").textContent = data.workspace;
      // The cards (and what a user typed in them) are drawn again only when the flows
      // themselves change; recent runs and fire times are updated in place.
      const key = JSON.stringify([data.checks, data.diagnostics,
        data.flows.map((f) => [f.flow, f.version, f.params, f.stages, f.schedule && f.schedule.cron,
          f.schedule && f.schedule.interval_ms, f.schedule && f.schedule.timezone])]);
      if (key !== shape) {
        shape = key;
        live.clear();
        drawCards(data);
      }
      for (const f of data.flows) {
        const parts = live.get(f.flow);
        if (!parts) continue;
        fill(parts.recent, f.recent_runs.length ? table(["recent run", "state", "started"], f.recent_runs.map((r) => h("tr", {},
          h("td", {}, h("a", { class: "mono", href: "#/runs/" + encodeURIComponent(r.run_id) }, r.run_id)),
          h("td", {}, badge(r.state)), h("td", {}, when(r.started_at))))) : h("p", { class: "muted" }, "No runs yet."));
        if (parts.next && f.schedule) parts.next.textContent = f.schedule.next_local.map(local).join(", ");
      }
    },
  };

  function drawCards(data) {
    const parts = [];
    if (!data.checks || data.diagnostics.trim()) {
      parts.push(h("div", { class: "panel" }, h("h2", {}, data.checks ? "Warnings" : "The workspace does not check"),
        h("pre", { id: "diagnostics" }, data.diagnostics)));
    }
    parts.push(h("div", { class: "cards" }, data.flows.map((f) => {
      const inputs = f.params.map((p) => [p, inputFor(p)]);
      const message = h("p", { class: "error" });
      const start = h("button", { id: "start-" + f.flow, onclick: async () => {
        const args = {};
        for (const [p, input] of inputs) {
          const v = valueOf(p, input);
          if (v !== undefined) args[p.name] = v;
        }
        start.disabled = true;
        message.textContent = "";
        try {
          const { run_id } = await act(`/api/flows/${encodeURIComponent(f.flow)}/runs`, { args });
          location.hash = "#/runs/" + encodeURIComponent(run_id);
        } catch (e) {
          message.textContent = e.message;
          start.disabled = false;
        }
      } }, "Start");
      const s = f.schedule;
      const recent = h("div", { class: "recent" });
      const next = s ? h("dd", { class: "next" }) : null;
      live.set(f.flow, { recent, next });
      return h("div", { class: "panel", "data-flow": f.flow },
        h("h2", {}, f.flow, f.version ? " @version(" + f.version + ")" : "", h("span", { class: "muted" }, ` · ${f.stages} stage(s)`)),
        s ? h("dl", { class: "kv" },
          h("dt", {}, "schedule"), h("dd", {}, s.cron ? `cron '${s.cron}'` : `every ${ms(s.interval_ms)}`, ` in ${s.timezone}`),
          h("dt", {}, "next"), next) : null,
        h("div", {}, inputs.map(([p, input]) => h("label", { class: "form-row" },
          h("span", {}, p.name, " ", h("span", { class: "muted" }, p.type)), input))),
        h("p", {}, start), message, recent);
    })));
    fill(box, parts);
  }
}
