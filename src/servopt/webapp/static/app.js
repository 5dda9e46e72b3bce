// servopt web app: a thin client of the JSON API under /api/ (see /api/openapi.json).
// Everything the server sends is inserted as text (never as HTML): experiment names come from users.
"use strict";

const POLL_MS = 400;
const VALIDATE_DELAY_MS = 600;
const MODEL_LOOKUP_DELAY_MS = 200;
const LINE_PX = 20;          // --lh in app.css: the editor's line height
const EDITOR_PAD_PX = 8;     // top padding of the editor's text
const TRACE_COLORS = ["#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

const $ = (sel) => document.querySelector(sel);
const state = {
  systems: [],
  job: null,          // id of the search being shown or polled
  pinned: [],         // earlier runs kept on the chart: {label, pareto}
  runCount: 0,
  lastResult: null,
  yamlProblems: [],   // the editor's current problems (for "jump to the first one")
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = { detail: `HTTP ${response.status}`, problems: [] }; }
  return { status: response.status, ok: response.ok, data };
}

function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

// ---------------------------------------------------------------- formatting
function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const abs = Math.abs(value);
    return value.toFixed(abs >= 100 ? 1 : abs >= 1 ? 2 : 4);
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const LABELS = {
  mode: "mode", tokens_per_s_per_gpu: "tokens/s/GPU", tokens_per_s_per_user: "tokens/s/user",
  ttft_ms: "TTFT (ms)", tpot_ms: "TPOT (ms)", total_gpus_used: "GPUs used",
};
const label = (key) => LABELS[key] || key.replaceAll("_", " ");

// ---------------------------------------------------------------- tabs
function showTab(name) {
  for (const button of document.querySelectorAll(".tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === name));
  }
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  if (name === "advanced") renderEditor([]);
}

// ---------------------------------------------------------------- the default form
function fillSelect(select, values, keep) {
  const previous = keep ? select.value : null;
  const fixed = [...select.querySelectorAll("option[data-fixed]")];
  select.replaceChildren(...fixed);
  for (const value of values) select.append(el("option", { value, text: value }));
  if (previous !== null && [...select.options].some((o) => o.value === previous)) select.value = previous;
}

function systemByName(name) { return state.systems.find((s) => s.name === name); }

function refreshBackends() {
  const form = $("#default-form");
  const system = systemByName(form.system.value);
  const backends = system && !system.roofline_only ? Object.keys(system.backends) : ["trtllm", "vllm", "sglang"];
  fillSelect(form.backend, backends, true);
  refreshVersions();
}

function refreshVersions() {
  const form = $("#default-form");
  const system = systemByName(form.system.value);
  const versions = system && system.backends[form.backend.value] ? system.backends[form.backend.value] : [];
  fillSelect(form.backend_version, versions, true);
}

async function loadSystems() {
  const { data } = await api("GET", "/api/systems");
  state.systems = data;
  const form = $("#default-form");
  const names = data.map((s) => s.name);
  fillSelect(form.system, names, false);
  form.system.value = names.includes("h200_sxm") ? "h200_sxm" : names[0];
  form.decode_system.querySelector("option").dataset.fixed = "1";
  fillSelect(form.decode_system, names, false);
  form.backend_version.querySelector("option").dataset.fixed = "1";
  refreshBackends();
}

const lookUpModels = debounce(async () => {
  const form = $("#default-form");
  const { ok, data } = await api("GET", `/api/models?q=${encodeURIComponent(form.model.value)}`);
  if (!ok) return;
  $("#model-list").replaceChildren(...data.map((m) => el("option", { value: m.name, text: m.hf_id || m.family })));
  const exact = data.find((m) => m.name.toLowerCase() === form.model.value.trim().toLowerCase());
  $("#model-hint").textContent = exact ? `${exact.family}${exact.hf_id ? " · " + exact.hf_id : ""}` :
    `${data.length} match${data.length === 1 ? "" : "es"}`;
}, MODEL_LOOKUP_DELAY_MS);

function formRequest() {
  const form = $("#default-form");
  const number = (name) => (form[name].value.trim() === "" ? null : Number(form[name].value));
  const body = {
    kind: "default",
    model: form.model.value.trim(),
    system: form.system.value,
    backend: form.backend.value,
    total_gpus: number("total_gpus"),
    isl: number("isl"),
    osl: number("osl"),
    ttft: number("ttft"),
    tpot: number("tpot"),
    top_n: number("top_n"),
  };
  if (form.decode_system.value) body.decode_system = form.decode_system.value;
  if (form.backend_version.value) body.backend_version = form.backend_version.value;
  for (const key of Object.keys(body)) if (body[key] === null) delete body[key];
  return body;
}

function showFormProblems(problems) {
  const form = $("#default-form");
  for (const slot of form.querySelectorAll("[data-error-for]")) slot.textContent = "";
  for (const input of form.querySelectorAll(".invalid")) input.classList.remove("invalid");
  const unplaced = [];
  for (const problem of problems) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(problem.field)}"]`);
    if (slot) {
      slot.textContent = (slot.textContent ? slot.textContent + "\n" : "") + problem.text;
      if (form[problem.field]) form[problem.field].classList.add("invalid");
    } else {
      unplaced.push(problem.text);
    }
  }
  $("#form-problems").replaceChildren(...unplaced.map((text) => el("li", { text })));
}

// ---------------------------------------------------------------- the YAML editor
function renderEditor(problems) {
  state.yamlProblems = problems;
  const text = $("#yaml").value;
  const lines = text.split("\n");
  const byLine = new Map();
  for (const problem of problems) {
    if (problem.line > 0) byLine.set(problem.line, [...(byLine.get(problem.line) || []), problem]);
  }
  $("#gutter").replaceChildren(...lines.map((_, i) =>
    el("div", { class: byLine.has(i + 1) ? "bad" : "", text: String(i + 1) })));
  $("#backdrop").replaceChildren(...lines.map((line, i) =>
    el("div", { class: byLine.has(i + 1) ? "bad" : "", text: line || " " })));
  const notes = $("#notes");
  notes.replaceChildren();
  for (const [line, items] of [...byLine.entries()].sort((a, b) => a[0] - b[0])) {
    const note = el("div", { class: "note", "data-line": String(line),
      text: items.map((p) => `${line}:${p.col} ${p.text.replace(/^[^ ]+:\d+:\d+: /, "")}`).join("\n") });
    note.dataset.top = String(EDITOR_PAD_PX + (line - 1) * LINE_PX);
    notes.append(note);
  }
  const general = problems.filter((p) => !(p.line > 0)).map((p) => el("li", { text: p.text }));
  $("#yaml-problems").replaceChildren(...general);
  syncScroll();
}

function syncScroll() {
  const area = $("#yaml");
  $("#gutter").scrollTop = area.scrollTop;
  $("#backdrop").scrollTop = area.scrollTop;
  $("#backdrop").scrollLeft = area.scrollLeft;
  for (const note of $("#notes").children) note.style.top = `${Number(note.dataset.top) - area.scrollTop}px`;
}

// Scroll the editor so that ``line`` shows a few lines below the top, and put the caret there.
function jumpToLine(line) {
  const area = $("#yaml");
  const lines = area.value.split("\n");
  const offset = lines.slice(0, line - 1).reduce((sum, l) => sum + l.length + 1, 0);
  area.focus();
  area.setSelectionRange(offset, offset);
  area.scrollTop = Math.max(0, (line - 4) * LINE_PX);
  syncScroll();
}

function jumpToFirstProblem() {
  const lines = (state.yamlProblems || []).map((p) => p.line).filter((l) => l > 0);
  if (lines.length) jumpToLine(Math.min(...lines));
}

function yamlRequest() {
  return { kind: "yaml", yaml: $("#yaml").value, top_n: Number($("#yaml-top-n").value) || 5 };
}

async function validateYaml() {
  const status = $("#yaml-status");
  const { status: code, data } = await api("POST", "/api/validate", yamlRequest());
  if (code === 200) {
    status.className = "status ok";
    status.textContent = `valid: ${data.experiments.map((e) => `${e.name} (${e.serving_mode})`).join(", ")}`;
    renderEditor([]);
  } else {
    const problems = data.problems || [];
    status.className = "status bad";
    status.textContent = `${problems.length || 1} problem${problems.length === 1 ? "" : "s"}`;
    renderEditor(problems.length ? problems : [{ line: 0, text: data.detail }]);
  }
}
const validateSoon = debounce(validateYaml, VALIDATE_DELAY_MS);

async function loadExample() {
  const { data } = await api("GET", "/api/example");
  $("#yaml").value = data.yaml;
  renderEditor([]);
  validateYaml();
}

// ---------------------------------------------------------------- searches
function setBusy(busy) {
  for (const id of ["#run-default", "#run-yaml"]) $(id).disabled = busy;
  $("#progress").hidden = !busy;
}

async function startSearch(body, onProblems) {
  $("#failure").hidden = true;
  const { status, data } = await api("POST", "/api/searches", body);
  if (status === 202) {
    onProblems([]);
    state.job = data.id;
    setBusy(true);
    showProgress(data);
    poll(data.id);
    return;
  }
  if (status === 422) { onProblems(data.problems || []); return; }
  showFailure(status === 429 ? `The server is busy: ${data.detail}` : data.detail);
}

function showProgress(job) {
  const pct = Math.round((job.fraction || 0) * 100);
  $("#bar-fill").style.width = `${pct}%`;
  $(".bar").setAttribute("aria-valuenow", String(pct));
  const where = job.status === "queued" ? `queued (position ${job.position})` : `${job.stage} — ${pct}%`;
  $("#progress-text").textContent = `${where} · ${job.elapsed_s.toFixed(1)} s`;
}

function showFailure(text) {
  const box = $("#failure");
  box.textContent = text;
  box.hidden = false;
}

async function poll(id) {
  if (state.job !== id) return;
  const { status, data } = await api("GET", `/api/searches/${id}`);
  if (status !== 200) { setBusy(false); showFailure(data.detail); return; }
  showProgress(data);
  if (data.status === "queued" || data.status === "running") { setTimeout(() => poll(id), POLL_MS); return; }
  setBusy(false);
  state.job = null;
  if (data.status === "done") { showResult(id, data.result); return; }
  const problems = (data.error && data.error.problems) || [];
  const lines = problems.length ? problems.map((p) => p.text).join("\n") : (data.error && data.error.detail);
  showFailure(`Search ${data.status.replace("_", " ")}: ${lines}`);
}

async function cancelSearch() {
  if (state.job) await api("DELETE", `/api/searches/${state.job}`);
}

// ---------------------------------------------------------------- results
function bestByMode(result) {
  const best = {};
  for (const exp of result.experiments || []) {
    const b = exp.best;
    if (!b) continue;
    const mode = exp.serving_mode || b.mode;
    if (!best[mode] || b.tokens_per_s_per_gpu > best[mode].tokens_per_s_per_gpu) best[mode] = { ...b, experiment: exp.name };
  }
  return best;
}

function renderVerdict(result) {
  const box = $("#verdict");
  const best = bestByMode(result);
  const agg = best.agg, disagg = best.disagg;
  box.replaceChildren();
  if (!agg && !disagg) { box.textContent = "No configuration meets the TTFT/TPOT targets."; return; }
  if (agg && disagg) {
    const [win, lose] = disagg.tokens_per_s_per_gpu > agg.tokens_per_s_per_gpu ? [disagg, agg] : [agg, disagg];
    const gain = lose.tokens_per_s_per_gpu > 0 ? (win.tokens_per_s_per_gpu / lose.tokens_per_s_per_gpu - 1) * 100 : Infinity;
    const winName = win === disagg ? "Disaggregated (xPyD)" : "Aggregated";
    box.append(el("span", { class: "mode", text: winName }),
      ` wins: ${fmt(win.tokens_per_s_per_gpu)} vs ${fmt(lose.tokens_per_s_per_gpu)} tokens/s/GPU ` +
      `(${Number.isFinite(gain) ? "+" + gain.toFixed(1) + "%" : "the other mode is infeasible"})`);
    return;
  }
  const only = agg || disagg;
  box.append(el("span", { class: "mode", text: agg ? "Aggregated" : "Disaggregated (xPyD)" }),
    ` only: ${fmt(only.tokens_per_s_per_gpu)} tokens/s/GPU (the other mode found no feasible configuration or was not searched)`);
}

function renderBest(result) {
  const best = result.best;
  const box = $("#best");
  box.replaceChildren();
  if (!best) return;
  box.append(el("h3", { text: "Best configuration" }));
  const grid = el("div", { class: "kv" });
  for (const [key, value] of Object.entries(best)) {
    grid.append(el("div", {}, el("span", { text: label(key) }), fmt(value)));
  }
  box.append(grid);
}

function columnsOf(rows) {
  const columns = [];
  for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  return columns;
}

function renderTables(id, result) {
  const host = $("#tables");
  host.replaceChildren();
  for (const exp of result.experiments || []) {
    const rows = exp.top || [];
    const card = el("div", { class: "card experiment", "data-experiment": exp.name });
    card.append(el("h2", { text: `${exp.name} · ${exp.serving_mode} · top ${rows.length}` }));
    if (!rows.length) {
      card.append(el("p", { text: "No configuration of this experiment meets the targets." }));
      host.append(card);
      continue;
    }
    const columns = columnsOf(rows);
    const head = el("tr", {}, el("th", { text: "rank" }),
      ...columns.map((c) => el("th", { class: typeof rows[0][c] === "number" ? "" : "text", text: label(c) })),
      el("th", { class: "text", text: "deployment" }));
    const body = rows.map((row, i) => {
      const rank = Number.isInteger(row.rank) ? row.rank : i + 1;
      const button = el("button", { type: "button", text: "configs" });
      button.addEventListener("click", () => showDeployment(id, exp.name, rank, card));
      return el("tr", { class: i === 0 ? "best" : "" }, el("td", { text: String(rank) }),
        ...columns.map((c) => el("td", { class: typeof row[c] === "number" ? "" : "text", text: fmt(row[c]) })),
        el("td", { class: "text" }, button));
    });
    card.append(el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body))));
    card.append(el("div", { class: "files" }));
    host.append(card);
  }
}

async function showDeployment(id, experiment, rank, card) {
  const box = card.querySelector(".files");
  const query = `experiment=${encodeURIComponent(experiment)}&rank=${rank}`;
  const { ok, data } = await api("GET", `/api/searches/${id}/deployment?${query}`);
  box.replaceChildren();
  if (!ok) { box.append(el("p", { class: "error", text: data.detail })); return; }
  const zip = el("a", { href: `/api/searches/${id}/deployment?${query}&format=zip`, download: "", text: "Download all (zip)" });
  box.append(el("h3", { text: `Deployment configs — ${experiment}, rank ${rank}` }), zip);
  for (const [name, text] of Object.entries(data.files)) {
    box.append(el("details", {}, el("summary", { text: name }), el("pre", { text })));
  }
}

function hoverText(point) {
  const layout = typeof point.layout === "string" ? point.layout : JSON.stringify(point.layout);
  return `${point.experiment} · ${point.mode}<br>${layout}<br>` +
    `${fmt(point.tokens_per_s_per_user)} tokens/s/user · ${fmt(point.tokens_per_s_per_gpu)} tokens/s/GPU`;
}

function paretoTraces(pareto, prefix, dashed, colorOffset) {
  const groups = new Map();
  for (const point of pareto || []) {
    const key = point.experiment;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(point);
  }
  const traces = [];
  let i = colorOffset;
  for (const [name, points] of groups) {
    points.sort((a, b) => a.tokens_per_s_per_user - b.tokens_per_s_per_user);
    const color = TRACE_COLORS[i++ % TRACE_COLORS.length];
    traces.push({
      type: "scatter", mode: "lines+markers", name: prefix + name,
      x: points.map((p) => p.tokens_per_s_per_user), y: points.map((p) => p.tokens_per_s_per_gpu),
      text: points.map(hoverText), hovertemplate: "%{text}<extra></extra>",
      line: { shape: "hv", color, dash: dashed ? "dot" : "solid", width: dashed ? 1.5 : 2.5 },
      marker: { size: dashed ? 5 : 8, color, opacity: dashed ? 0.6 : 1 },
    });
    const chosen = points.filter((p) => p.chosen);
    if (chosen.length && !dashed) {
      traces.push({
        type: "scatter", mode: "markers", name: `${prefix}${name} · chosen`,
        x: chosen.map((p) => p.tokens_per_s_per_user), y: chosen.map((p) => p.tokens_per_s_per_gpu),
        text: chosen.map((p) => "chosen<br>" + hoverText(p)), hovertemplate: "%{text}<extra></extra>",
        marker: { symbol: "star", size: 18, color, line: { color: "#111", width: 1.5 } },
      });
    }
  }
  return traces;
}

function renderChart(result) {
  const traces = [];
  state.pinned.forEach((run, i) => traces.push(...paretoTraces(run.pareto, `${run.label}: `, true, i + 3)));
  traces.push(...paretoTraces(result.pareto, "", false, 0));
  const layout = {
    margin: { l: 64, r: 16, t: 16, b: 52 },
    xaxis: { title: { text: "tokens/s/user" }, zeroline: false },
    yaxis: { title: { text: "tokens/s/GPU" }, zeroline: false },
    legend: { orientation: "h", y: -0.18 },
    hovermode: "closest",
  };
  if (window.Plotly) window.Plotly.react("pareto", traces, layout, { displaylogo: false, responsive: true });
  else $("#pareto").textContent = "Plotly.js did not load; the tables below hold the same data.";
}

function showResult(id, result) {
  state.runCount += 1;
  if (state.lastResult && $("#keep-runs").checked) state.pinned.push(state.lastResult);
  state.lastResult = { label: `run ${state.runCount}`, pareto: result.pareto };
  $("#results").hidden = false;
  renderVerdict(result);
  renderBest(result);
  $("#download-csv").href = `/api/searches/${id}/result.csv`;
  $("#download-json").href = `/api/searches/${id}/result.json`;
  renderChart(result);
  renderTables(id, result);
  document.body.dataset.result = id;  // end-to-end tests wait on this
}

async function refreshQueue() {
  const { ok, data } = await api("GET", "/api/health");
  if (ok) {
    const q = data.queue;
    $("#queue-status").textContent = q.running ? `searching · ${q.queued} queued` : "idle";
  }
}

// ---------------------------------------------------------------- wiring
function init() {
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  const form = $("#default-form");
  form.system.addEventListener("change", refreshBackends);
  form.backend.addEventListener("change", refreshVersions);
  form.model.addEventListener("input", lookUpModels);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    startSearch(formRequest(), showFormProblems);
  });
  const area = $("#yaml");
  area.addEventListener("scroll", syncScroll);
  area.addEventListener("input", () => { renderEditor([]); validateSoon(); });
  $("#validate-yaml").addEventListener("click", validateYaml);
  $("#yaml-status").addEventListener("click", jumpToFirstProblem);
  $("#reset-yaml").addEventListener("click", loadExample);
  $("#run-yaml").addEventListener("click", () => startSearch(yamlRequest(), (problems) => {
    renderEditor(problems);
    const status = $("#yaml-status");
    status.className = problems.length ? "status bad" : "status";
    status.textContent = problems.length ? `${problems.length} problem${problems.length === 1 ? "" : "s"}` : "";
  }));
  $("#cancel").addEventListener("click", cancelSearch);
  $("#clear-runs").addEventListener("click", () => {
    state.pinned = [];
    if (state.lastResult) renderChart({ pareto: state.lastResult.pareto });
  });
  loadSystems();
  lookUpModels();
  loadExample();
  refreshQueue();
  setInterval(refreshQueue, 5000);
}

document.addEventListener("DOMContentLoaded", init);
