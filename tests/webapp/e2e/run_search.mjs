// Drives servopt's web app in headless chromium (Debian's, through playwright-core; nothing downloaded).
// usage: node run_search.mjs BASE_URL CHROMIUM_PATH SCREENSHOT_DIR
// Prints one JSON line with what it saw; exits non-zero on the first thing that is not as expected.
import { SEARCH_TIMEOUT_MS, check, checkClean, openApp } from "./app_page.mjs";

const [base, executablePath, shots] = process.argv.slice(2);
const { browser, page, seen } = await openApp(base, executablePath);
try {
  // ---- the default form: a small search
  await page.fill("input[name=model]", "QWEN3_32B");
  await page.selectOption("select[name=system]", "h200_sxm");
  await page.fill("input[name=total_gpus]", "8");
  await page.fill("input[name=top_n]", "3");
  await page.click("#run-default");
  await page.waitForSelector("#progress:not([hidden])");
  await page.waitForFunction(() => document.body.dataset.result, null, { timeout: SEARCH_TIMEOUT_MS });

  const verdict = (await page.textContent("#verdict")).trim();
  const tables = await page.$$eval("#tables .experiment", (cards) =>
    cards.map((c) => ({ name: c.dataset.experiment, rows: c.querySelectorAll("tbody tr").length })));
  const traces = await page.$$eval("#pareto .scatterlayer .trace", (t) => t.length);
  const points = await page.$$eval("#pareto .scatterlayer .point", (p) => p.length);
  const stars = await page.$$eval("#pareto .scatterlayer .point", (p) =>
    p.filter((n) => (n.getAttribute("d") || "").length > 60).length);
  check(verdict.length > 10, `no verdict: ${verdict}`);
  check(tables.length >= 1 && tables.some((t) => t.rows > 0), `no table rows: ${JSON.stringify(tables)}`);
  check(traces >= 1 && points >= 1, `no chart: ${traces} traces, ${points} points`);

  // hover a frontier point: the tooltip shows the layout
  // (the mouse goes to the point's centre: plotly's drag layer sits above the markers)
  // (scrolled into view first: a point below the fold cannot be hovered)
  const point = await page.$("#pareto .scatterlayer .trace .point");
  await point.scrollIntoViewIfNeeded();
  const box = await point.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.waitForSelector("#pareto .hoverlayer .hovertext", { timeout: 5_000 });
  const hover = (await page.textContent("#pareto .hoverlayer .hovertext")).trim();

  // the deployment configs of the first row
  await page.click("#tables .experiment tbody tr:first-child button");
  await page.waitForSelector("#tables .experiment .files details");
  const files = await page.$$eval("#tables .experiment .files summary", (s) => s.map((n) => n.textContent));

  const csvHref = await page.getAttribute("#download-csv", "href");
  const csv = await page.evaluate(async (href) => (await fetch(href)).text(), csvHref);
  check(csv.split("\n")[0].startsWith("experiment,serving_mode,rank"), `bad CSV header: ${csv.slice(0, 80)}`);
  await page.screenshot({ path: `${shots}/result.png`, fullPage: true });

  // ---- the advanced tab: a bad value is reported next to its line
  await page.click("#tab-advanced");
  await page.waitForFunction(() => document.querySelector("#yaml").value.includes("exp_agg_full"));
  const text = await page.inputValue("#yaml");
  const lines = text.split("\n");
  const badLine = lines.findIndex((l) => l.includes("total_gpus: 8")) + 1;
  await page.fill("#yaml", text.replace("total_gpus: 8", "total_gpus: -8"));
  await page.waitForSelector("#notes .note");
  const note = await page.$eval("#notes .note", (n) => ({ line: Number(n.dataset.line), text: n.textContent }));
  const gutterBad = await page.$$eval("#gutter .bad", (g) => g.map((n) => Number(n.textContent)));
  check(note.line === badLine, `note on line ${note.line}, expected ${badLine}`);
  check(note.text.includes("exp_agg_full.total_gpus") && note.text.includes("must be >= 1"), `note text: ${note.text}`);
  check(gutterBad.includes(badLine), `gutter marks ${gutterBad}, expected ${badLine}`);
  await page.click("#yaml-status");  // "1 problem": jumps to it
  const scrolled = await page.$eval("#yaml", (a) => a.scrollTop);
  const noteTop = await page.$eval("#notes .note", (n) => parseFloat(n.style.top));
  check(noteTop >= 0 && noteTop < 460, `the note is off screen after the jump (top ${noteTop}, scroll ${scrolled})`);
  await page.screenshot({ path: `${shots}/yaml-problem.png` });

  // ---- run the (fixed) YAML with the first run kept on the chart: several experiments, two runs
  await page.click("#reset-yaml");
  await page.waitForFunction(() => document.querySelector("#notes").children.length === 0);
  await page.check("#keep-runs");
  const firstResult = await page.evaluate(() => document.body.dataset.result);
  await page.click("#run-yaml");
  await page.waitForFunction((prev) => document.body.dataset.result && document.body.dataset.result !== prev,
    firstResult, { timeout: SEARCH_TIMEOUT_MS });
  const legend = await page.$$eval("#pareto .legend .traces .legendtext", (t) => t.map((n) => n.textContent));
  check(legend.some((t) => t.startsWith("run 1: ")), `the first run was not kept: ${legend}`);
  check(legend.some((t) => t.startsWith("exp_agg_full")) && legend.some((t) => t.startsWith("exp_disagg_full")),
    `the YAML's experiments are not on the chart: ${legend}`);
  await page.screenshot({ path: `${shots}/two-runs.png`, fullPage: true });

  checkClean(seen);
  console.log(JSON.stringify({ verdict, tables, traces, points, stars, hover, files, note, gutterBad, legend }));
} finally {
  await browser.close();
}
