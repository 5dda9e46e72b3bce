// Helpers shared by the page's modules: DOM building, the API client, formatting.
// Everything the server sends is inserted as text (never as HTML): experiment names come from users.

export const $ = (sel) => document.querySelector(sel);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// Every answer of the API is JSON, errors included ({detail, problems}).
export async function api(method, path, body) {
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

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

export function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (Number.isInteger(value)) return String(value);
    const abs = Math.abs(value);
    return value.toFixed(abs >= 100 ? 0 : abs >= 1 ? 2 : 4);
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

const LABELS = {
  mode: "mode", tokens_per_s_per_gpu: "tokens/s/GPU", tokens_per_s_per_user: "tokens/s/user",
  ttft_ms: "TTFT (ms)", tpot_ms: "TPOT (ms)", total_gpus_used: "GPUs used",
};
export const label = (key) => LABELS[key] || key.replaceAll("_", " ");
