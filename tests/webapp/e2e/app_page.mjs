// The web app in headless chromium (Debian's, through playwright-core; nothing downloaded): what every
// browser test shares. The page is opened offline (anything but the server itself is aborted and
// counted), console and page errors are collected, and 422s are expected (the tests send bad input
// on purpose).
import { chromium } from "playwright-core";

export const SEARCH_TIMEOUT_MS = 240_000;
const STEP_TIMEOUT_MS = 30_000;

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

// Launches chromium and opens the app's form: { browser, page, seen }.
export async function openApp(base, executablePath) {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // root in CI containers cannot use chromium's sandbox; the page is our own, on loopback
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const seen = { consoleErrors: [], pageErrors: [], foreign: [] };
  try {
    const page = await browser.newPage({ viewport: { width: 1360, height: 1000 } });
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    // chromium logs every 4xx fetch; the 422s of deliberately bad input are expected
    const expected = /status of 422/;
    page.on("console", (m) => {
      if (m.type() === "error" && !expected.test(m.text())) seen.consoleErrors.push(`${m.text()} (${m.location().url})`);
    });
    page.on("pageerror", (e) => seen.pageErrors.push(String(e)));
    // Anything but the server itself is a CDN or a leak: the app must work offline.
    await page.route("**/*", (route) => {
      const url = route.request().url();
      if (!url.startsWith(base) && !url.startsWith("data:") && !url.startsWith("blob:")) {
        seen.foreign.push(url);
        return route.abort();
      }
      return route.continue();
    });
    await page.goto(base + "/");
    await page.waitForFunction(() => document.querySelectorAll("select[name=system] option").length > 3);
    return { browser, page, seen };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

// The checks every run ends with: nothing left the server, no page or console errors.
export function checkClean(seen) {
  check(seen.foreign.length === 0, `requests left the server: ${seen.foreign.join(", ")}`);
  check(seen.pageErrors.length === 0, `page errors: ${seen.pageErrors.join("; ")}`);
  check(seen.consoleErrors.length === 0, `console errors: ${seen.consoleErrors.join("; ")}`);
}
