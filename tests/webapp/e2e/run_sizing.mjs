// Drives the load form of servopt's web app in headless chromium: a rate sizing at the least cost.
// usage: node run_sizing.mjs BASE_URL CHROMIUM_PATH SCREENSHOT_DIR
// Prints one JSON line with what it saw; exits non-zero on the first thing that is not as expected.
import { SEARCH_TIMEOUT_MS, check, checkClean, openApp } from "./app_page.mjs";

const [base, executablePath, shots] = process.argv.slice(2);
const { browser, page, seen } = await openApp(base, executablePath);
try {
  // ---- the load section: rate, percentiles, arrivals, objective
  await page.fill("input[name=model]", "QWEN3_32B");
  await page.selectOption("select[name=system]", "h200_sxm");
  await page.fill("input[name=total_gpus]", "16");
  await page.fill("input[name=isl]", "2000");
  await page.fill("input[name=osl]", "200");
  await page.fill("input[name=request_rate]", "4");
  await page.fill("input[name=ttft_percentile]", "90");
  await page.fill("input[name=tpot_percentile]", "99");
  await page.selectOption("select[name=arrival]", "gamma");
  await page.fill("input[name=arrival_cv]", "1.5");
  await page.selectOption("select[name=objective]", "min_cost");

  // min_cost without a price: the server refuses, next to the price field
  await page.click("#run-default");
  await page.waitForFunction(() => document.querySelector("[data-error-for=gpu_hour_price]").textContent.length > 0);
  const priceError = (await page.textContent("[data-error-for=gpu_hour_price]")).trim();
  check(priceError.includes("gpu_hour_price") && priceError.includes("min_cost"), `price error: ${priceError}`);

  await page.fill("input[name=gpu_hour_price]", "h200_sxm=3.5");
  await page.click("#run-default");
  await page.waitForFunction(() => document.body.dataset.result, null, { timeout: SEARCH_TIMEOUT_MS });
  const cleared = (await page.textContent("[data-error-for=gpu_hour_price]")).trim();
  check(cleared === "", `the price error stayed: ${cleared}`);

  const verdict = (await page.textContent("#verdict")).trim();
  const head = await page.$$eval("#best table.sizing thead th", (h) => h.map((n) => n.textContent));
  const rows = await page.$$eval("#best table.sizing tbody tr", (r) =>
    r.map((tr) => Array.from(tr.querySelectorAll("td"), (td) => td.textContent)));
  check(verdict.includes("4 req/s (gamma)") && verdict.includes("p90 TTFT") && verdict.includes("min_cost"),
    `headline: ${verdict}`);
  check(/\d+(\.\d+)? USD\/hour/.test(verdict), `no cost in the headline: ${verdict}`);
  check(head.includes("USD/hour") && head.includes("TTFT mean"), `table head: ${head}`);
  check(rows.length >= 2 && rows[0][0].includes("★"), `table rows: ${JSON.stringify(rows)}`);
  const csvHref = await page.getAttribute("#download-csv", "href");
  const csv = await page.evaluate(async (href) => (await fetch(href)).text(), csvHref);
  check(csv.split("\n")[0].startsWith("experiment,serving_mode,rank"), `bad CSV header: ${csv.slice(0, 80)}`);
  await page.screenshot({ path: `${shots}/sizing.png`, fullPage: true });

  checkClean(seen);
  console.log(JSON.stringify({ verdict, head, rows, priceError }));
} finally {
  await browser.close();
}
