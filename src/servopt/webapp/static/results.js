// The outcome of a search: verdict, best configuration, Pareto chart (Plotly.js), top-N tables and
// the deployment configs of a chosen row.
import { $, api, el, fmt, label } from "/static/dom.js";

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
    if (value !== null && typeof value === "object") continue;  // nested: packed, groups
    grid.append(el("div", {}, el("span", { text: label(key) }), fmt(value)));
  }
  box.append(grid);
  const packed = best.packed;
  if (packed && packed.gain_vs_identical > 1e-9) {
    const shapes = (packed.groups || []).map((g) => `${g.replicas} x ${g.gpus_per_replica} GPUs`).join(" + ");
    box.append(el("p", { text: `Packed budget (beyond identical replicas): ${fmt(packed.tokens_per_s_per_gpu)} tokens/s/GPU ` +
      `using ${packed.total_gpus_used} GPUs (+${(100 * packed.gain_vs_identical).toFixed(2)}%)` + (shapes ? `: ${shapes}` : "") }));
  } else if (packed) {
    box.append(el("p", { text: "Packed budget: no gain, identical replicas already use the budget best." }));
  }
}

// Columns that repeat the experiment's own settings, or nest, are left out of the top-N tables.
const SKIPPED_COLUMNS = new Set(["rank", "experiment", "mode", "kind", "model", "backend", "version", "system",
  "decode_system", "status", "total_gpus", "groups"]);

function columnsOf(rows) {
  const columns = [];
  for (const row of rows) {
    for (const [key, value] of Object.entries(row)) {
      if (SKIPPED_COLUMNS.has(key) || (value !== null && typeof value === "object")) continue;
      if (!columns.includes(key)) columns.push(key);
    }
  }
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
  chart.pinned.forEach((run, i) => traces.push(...paretoTraces(run.pareto, `${run.label}: `, true, i + 3)));
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

export function showResult(id, result) {
  chart.runCount += 1;
  if (chart.last && $("#keep-runs").checked) chart.pinned.push(chart.last);
  chart.last = { label: `run ${chart.runCount}`, pareto: result.pareto };
  $("#results").hidden = false;
  renderVerdict(result);
  renderBest(result);
  $("#download-csv").href = `/api/searches/${id}/result.csv`;
  $("#download-json").href = `/api/searches/${id}/result.json`;
  renderChart(result);
  renderTables(id, result);
  document.body.dataset.result = id;  // end-to-end tests wait on this
}

export function clearPinned() {
  chart.pinned = [];
  if (chart.last) renderChart({ pareto: chart.last.pareto });
}
