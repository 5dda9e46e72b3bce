// The outcome of a search: verdict, best configuration, Pareto chart (Plotly.js), top-N tables and
// the deployment configs of a chosen row.
import { $, api, el, fmt } from "/static/dom.js";

const TRACE_COLORS = ["#1f6feb", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];
const chart = {
  pinned: [],         // earlier runs kept on the chart: {label, pareto}
  runCount: 0,
  last: null,         // the run on the chart now
};

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

// The page says "tokens/s/GPU" where the CLI's words say "tokens/s/gpu".
const gpuWord = (text) => text.replaceAll("tokens/s/gpu", "tokens/s/GPU");

function renderVerdict(result) {
  const box = $("#verdict");
  box.replaceChildren();
  const v = result.verdict;
  if (v) {  // the recommendation the CLI prints (report/verdict.py): one deployment, why, the other option
    box.append(el("div", { class: "headline", text: gpuWord(v.headline) }));
    if (v.why && v.why.length) box.append(el("ul", { class: "why" }, ...v.why.map((w) => el("li", { text: gpuWord(w) }))));
    if (v.alternative) box.append(el("p", { class: "alternative", text: "Other option: " + gpuWord(v.alternative) }));
    return;
  }
  const best = bestByMode(result);
  const agg = best.agg, disagg = best.disagg;
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

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// A parallel layout as the sizes that are not 1: tp2, tp4pp2, dp8ep8 (the CLI's tables say the same).
function parallel(row, prefix = "") {
  const parts = [["tp", "tp"], ["pp", "pp"], ["dp", "dp"], ["etp", "moe_tp"], ["ep", "moe_ep"]]
    .filter(([, key]) => row[prefix + key] !== undefined && row[prefix + key] !== 1)
    .map(([name, key]) => name + row[prefix + key]);
  return parts.join("") || "tp1";
}

function workerLines(row, mode) {
  if (mode === "agg") {
    return [`${parallel(row)} (${plural(row.gpus_per_worker ?? row.tp * row.pp * row.dp, "GPU")}), batch ${row.batch_size}` +
      (row.ctx_tokens ? `, ${row.ctx_tokens} context tokens per step` : "")];
  }
  return [
    `${plural(row.prefill_workers, "prefill worker")}: ${parallel(row, "prefill_")}, batch ${row.prefill_batch_size}`,
    `${plural(row.decode_workers, "decode worker")}: ${parallel(row, "decode_")}, batch ${row.decode_batch_size}`,
  ];
}

// The deployment the verdict names, as what to run: replicas, workers per replica, predicted figures.
function renderBest(id, result) {
  const best = result.best;
  const box = $("#best");
  box.replaceChildren();
  if (!best) return;
  const packed = result.verdict && result.verdict.deploy === "packed";
  const row = packed ? best.packed : best;
  const mode = row.mode || best.mode;
  box.append(el("h3", { text: `What to deploy: ${mode === "agg" ? "aggregated" : "disaggregated (xPyD)"}` +
    `${packed ? ", packed replicas" : ""}` }));
  const groups = row.groups && row.groups.length ? row.groups : [{ ...row }];
  const layout = el("div", { class: "deploy-layout" });
  for (const g of groups) {
    const title = `${plural(g.replicas, "replica")} × ${plural(g.gpus_per_replica, "GPU")}, each:`;
    layout.append(el("div", { class: "replica" }, el("strong", { text: title }),
      el("ul", {}, ...workerLines({ ...g, mode }, mode).map((line) => el("li", { text: line })))));
  }
  box.append(layout);
  const figures = [
    ["TTFT", `${fmt(row.ttft_ms)} ms`], ["TPOT", `${fmt(row.tpot_ms)} ms`],
    ["tokens/s/user", fmt(row.tokens_per_s_per_user)], ["tokens/s/GPU", fmt(row.tokens_per_s_per_gpu)],
    ["tokens/s", fmt(row.tokens_per_s)], ["requests/s", fmt(row.requests_per_s)],
    ["concurrency", fmt(Math.round(row.concurrency ?? 0))],
    ["GPUs used", `${row.total_gpus_used} of ${row.total_gpus ?? best.total_gpus}`],
  ];
  if (best.backend) figures.push(["engine", `${best.backend} ${best.version ?? ""}`.trim()]);
  const grid = el("div", { class: "kv" });
  for (const [name, value] of figures) grid.append(el("div", {}, el("span", { text: name }), value));
  box.append(el("h3", { text: "Predicted" }), grid);
  if (packed) {
    const button = el("button", { type: "button", text: "configs of this packed deployment" });
    const files = el("div", { class: "files" });
    button.addEventListener("click", () => showFiles(files, `/api/searches/${id}/packed-deployment?` +
      `experiment=${encodeURIComponent(result.verdict.experiment)}`, `Packed deployment — ${result.verdict.experiment}`));
    box.append(el("p", {}, button), files);
  }
  box.append(el("p", { class: "hint", text: "Engine configs and Kubernetes manifests of identical replicas: " +
    "the \"configs\" button of a table row." }));
}

// The table columns, most important first; columns marked "wide" are hidden on narrow screens.
const COLUMNS = [
  { head: "tokens/s/GPU", value: (r) => r.tokens_per_s_per_gpu },
  { head: "tokens/s/user", value: (r) => r.tokens_per_s_per_user },
  { head: "TTFT ms", value: (r) => r.ttft_ms },
  { head: "TPOT ms", value: (r) => r.tpot_ms },
  // Prefill and decode workers on their own lines (the CLI stacks them the same way when narrow).
  { head: "layout", text: true, layout: true, value: (r) => r.mode === "agg" ? `${parallel(r)} bs${r.batch_size}`
    : `${r.prefill_workers}P ${parallel(r, "prefill_")} bs${r.prefill_batch_size}\n` +
      `${r.decode_workers}D ${parallel(r, "decode_")} bs${r.decode_batch_size}` },
  { head: "replicas", value: (r) => `${r.replicas}×${r.gpus_per_replica}` },
  { head: "GPUs used", wide: true, value: (r) => r.total_gpus_used },
  { head: "concurrency", wide: true, value: (r) => Math.round(r.concurrency ?? 0) },
  { head: "requests/s", wide: true, value: (r) => r.requests_per_s },
  { head: "latency (ms)", wide: true, value: (r) => r.request_latency_ms },
];

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
    const cls = (c) => [c.text ? "text" : "", c.wide ? "wide" : "", c.layout ? "layout" : ""].join(" ").trim();
    const head = el("tr", {}, el("th", { text: "rank" }),
      ...COLUMNS.map((c) => el("th", { class: cls(c), text: c.head })),
      el("th", { class: "text", text: "files" }));
    const body = rows.map((row, i) => {
      const rank = Number.isInteger(row.rank) ? row.rank : i + 1;
      const button = el("button", { type: "button", text: "configs" });
      button.addEventListener("click", () => showDeployment(id, exp.name, rank, card));
      return el("tr", { class: i === 0 ? "best" : "" }, el("td", { text: String(rank) }),
        ...COLUMNS.map((c) => el("td", { class: cls(c), text: fmt(c.value(row)) })),
        el("td", { class: "text" }, button));
    });
    card.append(el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body))));
    card.append(el("p", { class: "hint", text: "Every column of every row: Download CSV / JSON." }));
    card.append(el("div", { class: "files" }));
    host.append(card);
  }
}

async function showDeployment(id, experiment, rank, card) {
  const query = `experiment=${encodeURIComponent(experiment)}&rank=${rank}`;
  await showFiles(card.querySelector(".files"), `/api/searches/${id}/deployment?${query}`,
    `Deployment configs — ${experiment}, rank ${rank}`);
}

async function showFiles(box, url, title) {
  const { ok, data } = await api("GET", url);
  box.replaceChildren();
  if (!ok) { box.append(el("p", { class: "error", text: data.detail })); return; }
  const zip = el("a", { href: `${url}&format=zip`, download: "", text: "Download all (zip)" });
  box.append(el("h3", { text: title }), zip);
  for (const [name, text] of Object.entries(data.files)) {
    box.append(el("details", {}, el("summary", { text: name }), el("pre", { text })));
  }
}

function hoverText(point) {
  const layout = typeof point.layout === "string" ? point.layout : JSON.stringify(point.layout);
  return `${point.experiment} · ${point.mode}<br>${layout}<br>` +
    `${fmt(point.tokens_per_s_per_user)} tokens/s/user · ${fmt(point.tokens_per_s_per_gpu)} tokens/s/GPU`;
}

const MODE_NAMES = { agg: "aggregated", disagg: "disaggregated" };
// "aggregated" for cli default's experiments (named after their mode), "<name> (disaggregated)" otherwise.
function seriesName(name, mode) {
  const word = MODE_NAMES[mode] || mode;
  return name === mode ? word : `${name} (${word})`;
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
      type: "scatter", mode: "lines+markers", name: prefix + seriesName(name, points[0].mode),
      x: points.map((p) => p.tokens_per_s_per_user), y: points.map((p) => p.tokens_per_s_per_gpu),
      text: points.map(hoverText), hovertemplate: "%{text}<extra></extra>",
      line: { shape: "hv", color, dash: dashed ? "dot" : "solid", width: dashed ? 1.5 : 2.5 },
      marker: { size: dashed ? 5 : 8, color, opacity: dashed ? 0.6 : 1 },
    });
    const chosen = points.filter((p) => p.chosen);
    if (chosen.length && !dashed) {
      traces.push({
        type: "scatter", mode: "markers", name: `${prefix}${seriesName(name, points[0].mode)} · chosen`,
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
  chart.pinned.forEach((run, i) => traces.push(...paretoTraces(run.pareto, `${run.label}: `, true, i + 3)));
  traces.push(...paretoTraces(result.pareto, "", false, 0));
  const tpot = ((result.experiments || [])[0] || {}).tpot_ms;
  const shapes = [], annotations = [];
  if (tpot > 0) {  // the TPOT target: points right of the line meet it
    shapes.push({ type: "line", xref: "x", yref: "paper", x0: 1000 / tpot, x1: 1000 / tpot, y0: 0, y1: 1,
      line: { color: "#555", width: 1.5, dash: "dash" } });
    annotations.push({ xref: "x", yref: "paper", x: 1000 / tpot, y: 1, xanchor: "left", yanchor: "top",
      text: ` TPOT target ${tpot} ms`, showarrow: false, font: { size: 11, color: "#555" } });
  }
  const layout = {
    shapes, annotations,
    margin: { l: 64, r: 16, t: 16, b: 52 },
    xaxis: { title: { text: "tokens/s/user" }, zeroline: false },
    yaxis: { title: { text: "tokens/s/GPU" }, zeroline: false },
    legend: { orientation: "h", y: -0.18 },
    hovermode: "closest",
  };
  if (window.Plotly) window.Plotly.react("pareto", traces, layout, { displaylogo: false, responsive: true });
  else $("#pareto").textContent = "Plotly.js did not load; the tables below hold the same data.";
}

function percentileCells(figures, digits) {
  return ["mean", "p50", "p90", "p99"].map((k) => el("td", { text: figures ? figures[k].toFixed(digits) : "—" }));
}

// A rate sizing (a load on the form): each mode's answer, simulated and analytic percentiles side by side.
function showSizing(id, doc, lines) {
  $("#results").hidden = false;
  const t = doc.targets;
  const load = doc.load.kind === "closed_loop" ? `${doc.load.concurrency} clients` :
    `${doc.load.request_rate} req/s (${doc.load.arrival})`;
  const usd = (answer) => (answer.cost ? answer.cost.usd_per_hour.toFixed(2) : "—");
  // GPUs per system when decode runs on another one.
  const gpus = (answer) => {
    const split = Object.entries(answer.gpus_by_system || {});
    return split.length > 1 ? `${answer.total_gpus_used} (${split.map(([s, n]) => `${n} ${s}`).join(" + ")})` :
      String(answer.total_gpus_used);
  };
  const cost = doc.best.cost ? `, ${usd(doc.best)} USD/hour` : "";
  $("#verdict").replaceChildren(el("p", {
    text: `${load} at p${t.ttft_percentile} TTFT ≤ ${t.ttft_ms} ms, p${t.tpot_percentile} TPOT ≤ ${t.tpot_ms} ms ` +
      `(${doc.objective}): ${gpus(doc.best)} GPUs, ${doc.best.mode}${cost}; binding target ${doc.best.binding}`,
  }), el("p", { class: "calibration", text: lines.calibration }));
  const table = el("table", { class: "sizing" });
  const head = el("tr");
  for (const h of ["mode", "GPUs", "USD/hour", "deployment", "", "TTFT mean", "p50", "p90", "p99", "TPOT mean", "p50", "p90", "p99"]) {
    head.append(el("th", { text: h }));
  }
  table.append(el("thead", {}, head));
  const body = el("tbody");
  for (const mode of ["agg", "disagg"]) {
    const answer = doc[mode];
    if (!answer) continue;
    const where = (w) => (w.system && w.system !== doc.system ? ` on ${w.system}` : "");
    const workers = answer.workers.map((w) => `${w.workers} × ${w.option}${where(w)}`).join(" + ");
    for (const kind of ["simulated", "analytic"]) {
      const first = kind === "simulated";
      const row = el("tr", {},
        el("td", { text: first ? mode + (doc.best.mode === mode ? " ★" : "") : "" }),
        el("td", { text: first ? gpus(answer) : "" }),
        el("td", { text: first ? usd(answer) : "" }),
        el("td", { text: first ? workers : "" }),
        el("td", { text: first ? "simulated" : "analytic" }),
        ...percentileCells(answer[kind].ttft_ms, 0),
        ...percentileCells(answer[kind].tpot_ms, 1));
      body.append(row);
    }
  }
  table.append(body);
  $("#best").replaceChildren(table);
  $("#download-csv").href = `/api/searches/${id}/result.csv`;
  $("#download-json").href = `/api/searches/${id}/result.json`;
  $("#pareto").replaceChildren(el("p", { text: "A rate sizing has no Pareto frontier: it answers one load." }));
  $("#tables").replaceChildren();
  document.body.dataset.result = id;  // end-to-end tests wait on this
}

// `lines`: the terminal report's calibration and error-band lines (webapp/api.py result_lines).
export function showResult(id, result, lines) {
  if (result.sizing) { showSizing(id, result.sizing, lines); return; }
  chart.runCount += 1;
  if (chart.last && $("#keep-runs").checked) chart.pinned.push(chart.last);
  chart.last = { label: `run ${chart.runCount}`, pareto: result.pareto, experiments: result.experiments };
  $("#results").hidden = false;
  renderVerdict(result);
  for (const line of [lines.calibration, ...lines.bands]) {
    $("#verdict").append(el("p", { class: "calibration", text: line }));
  }
  renderBest(id, result);
  $("#download-csv").href = `/api/searches/${id}/result.csv`;
  $("#download-json").href = `/api/searches/${id}/result.json`;
  renderChart(result);
  renderTables(id, result);
  document.body.dataset.result = id;  // end-to-end tests wait on this
}

export function clearPinned() {
  chart.pinned = [];
  if (chart.last) renderChart({ pareto: chart.last.pareto, experiments: chart.last.experiments });
}
