// servopt web app: a thin client of the JSON API under /api/ (see /api/openapi.json).
// This module holds the default form, the search lifecycle (submit, poll, cancel) and the wiring;
// editor.js the YAML tab, results.js what a finished search shows, dom.js the shared helpers.
import { $, api, debounce, el } from "/static/dom.js";
import {
  jumpToFirstProblem, loadExample, renderEditor, syncScroll, validateSoon, validateYaml, yamlRequest,
} from "/static/editor.js";
import { clearPinned, showResult } from "/static/results.js";

const POLL_MS = 400;
const MODEL_LOOKUP_DELAY_MS = 200;
const state = {
  systems: [],
  job: null,          // id of the search being shown or polled
};

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
    // A load (rate or clients) turns the search into rate sizing (docs/sizing.md).
    request_rate: number("request_rate"),
    concurrency: number("concurrency"),
    ttft_percentile: number("ttft_percentile"),
    tpot_percentile: number("tpot_percentile"),
    objective: form.objective.value,
    arrival: form.arrival.value,
    arrival_cv: number("arrival_cv"),
    gpu_hour_price: form.gpu_hour_price.value.trim() || null,
  };
  if (form.decode_system.value) body.decode_system = form.decode_system.value;
  if (form.backend_version.value) body.backend_version = form.backend_version.value;
  body.calibration = form.calibration.value;
  body.robust = form.robust.checked;
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
  if (data.status === "done") { showResult(id, data.result, data.lines); return; }
  const problems = (data.error && data.error.problems) || [];
  const lines = problems.length ? problems.map((p) => p.text).join("\n") : (data.error && data.error.detail);
  showFailure(`Search ${data.status.replace("_", " ")}: ${lines}`);
}

async function cancelSearch() {
  if (state.job) await api("DELETE", `/api/searches/${state.job}`);
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
  $("#clear-runs").addEventListener("click", clearPinned);
  loadSystems();
  lookUpModels();
  loadExample();
  refreshQueue();
  setInterval(refreshQueue, 5000);
}

document.addEventListener("DOMContentLoaded", init);
