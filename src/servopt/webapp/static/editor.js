// The advanced tab: an experiment YAML editor that shows each problem next to its line.
// A transparent textarea sits over a backdrop that paints the lines with problems; the notes column
// beside it holds the messages, kept level with their lines as the text scrolls.
import { $, api, debounce, el } from "/static/dom.js";

const VALIDATE_DELAY_MS = 600;
const LINE_PX = 20;          // --lh in app.css: the editor's line height
const EDITOR_PAD_PX = 8;     // top padding of the editor's text
let problemsShown = [];

export function renderEditor(problems) {
  problemsShown = problems;
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

export function syncScroll() {
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

export function jumpToFirstProblem() {
  const lines = problemsShown.map((p) => p.line).filter((l) => l > 0);
  if (lines.length) jumpToLine(Math.min(...lines));
}


export function yamlRequest() {
  return { kind: "yaml", yaml: $("#yaml").value, top_n: Number($("#yaml-top-n").value) || 5 };
}

export async function validateYaml() {
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
export const validateSoon = debounce(validateYaml, VALIDATE_DELAY_MS);

export async function loadExample() {
  const { data } = await api("GET", "/api/example");
  $("#yaml").value = data.yaml;
  renderEditor([]);
  validateYaml();
}
