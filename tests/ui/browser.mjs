// A user at the dashboard, in the system Chromium: node browser.mjs URL SCREENSHOT_DIR
// Prints "ok: STEP" per step; exits 1 with the step that failed. tests/it/ui.rs runs it
// against `wvflow ui` on a workspace with the flows Slow(seconds) and Broken.
import { chromium } from "playwright-core";

const [url, shots] = process.argv.slice(2);
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath: chromiumPath,
  // This machine's network is closed: Chromium's own background traffic is switched off.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let step = "start";
const ok = (what) => console.log("ok: " + what);
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  let loads = 0;
  page.on("load", () => (loads += 1));

  step = "open the address with the token";
  await page.goto(url);
  await page.waitForSelector("#runs-count");
  if (page.url().includes("token=")) throw new Error("the token stays in the address bar: " + page.url());
  ok(step);

  const startFlow = async (flow, args) => {
    await page.click('header a[data-nav="flows"]');
    await page.waitForSelector(`[data-flow="${flow}"] button`);
    for (const [name, value] of Object.entries(args)) await page.fill(`#param-${name}`, String(value));
    await page.click(`#start-${flow}`);
    await page.waitForURL(/#\/runs\/./, { timeout: 20000 });
    return decodeURIComponent(page.url().split("#/runs/")[1]);
  };
  const node = (stage, state) => `g.node[data-stage="${stage}"][data-state="${state}"]`;

  step = "start Slow(seconds = 3) from its form; watch `work` go running -> success without a reload";
  const loadsBefore = loads;
  const slow = await startFlow("Slow", { seconds: 3 });
  await page.waitForSelector(node("work", "running"), { timeout: 20000 });
  await page.waitForSelector(node("work", "success"), { timeout: 20000 });
  await page.waitForSelector(node("after", "success"), { timeout: 20000 });
  await page.waitForSelector('.actions[data-state="success"]');
  if (loads !== loadsBefore) throw new Error(`the page loaded again (${loads - loadsBefore} time(s))`);
  ok(step + " (run " + slow + ")");

  step = "a succeeded stage shows its rows";
  await page.click('g.node[data-stage="first"]');
  await page.waitForFunction(() => document.querySelector("#stage-detail")?.textContent.includes("Rows (first 2)"));
  const cells = await page.$$eval("#stage-detail td.mono", (tds) => tds.map((t) => t.textContent));
  if (cells.join(",") !== "1,a,2,b") throw new Error("rows shown: " + cells.join(","));
  await page.waitForSelector("#gantt rect.bar");
  await page.screenshot({ path: `${shots}/run.png` });
  ok(step);

  step = "open the logs of a failed stage";
  const broken = await startFlow("Broken", {});
  await page.waitForSelector(node("bad", "failed"), { timeout: 20000 });
  await page.click('g.node[data-stage="bad"]');
  await page.waitForFunction(() => document.querySelector("#stage-logs")?.textContent.includes("disk full on /data"));
  // What a run wrote is shown as text, never run as HTML.
  const logs = await page.textContent("#stage-logs");
  if (!logs.includes('<img src=x onerror="window.pwned=1">')) throw new Error("the log as shown: " + logs);
  if (await page.evaluate(() => window.pwned)) throw new Error("a log ran as HTML");
  const exits = await page.$$eval("#stage-detail td.exit", (tds) => tds.map((t) => t.textContent));
  if (exits.join(",") !== "3") throw new Error("exit codes shown: " + exits.join(","));
  ok(step + " (run " + broken + ")");

  step = "cancel a running run with the button";
  const long = await startFlow("Slow", { seconds: 60 });
  await page.waitForSelector(node("work", "running"), { timeout: 20000 });
  await page.click("#cancel");
  await page.waitForSelector('.actions[data-state="cancelled"]', { timeout: 20000 });
  await page.waitForSelector(node("work", "cancelled"));
  ok(step + " (run " + long + ")");

  step = "a run continued as new links to the run that continues it, and back";
  const first = await startFlow("Long", {});
  await page.waitForSelector('.actions[data-state="continued"]', { timeout: 20000 });
  await page.waitForFunction(() => document.querySelector("#facts")?.textContent.includes("continued as"));
  await page.click('#facts dd a[href^="#/runs/"]');
  await page.waitForFunction((id) => !location.hash.includes(encodeURIComponent(id)), first);
  await page.waitForFunction((id) => {
    const facts = document.querySelector("#facts")?.textContent || "";
    return facts.includes("continues") && facts.includes(id);
  }, first, { timeout: 20000 });
  ok(step + " (run " + first + ")");

  step = "an action without the token is refused";
  const status = await page.evaluate(() =>
    fetch("/api/flows/Slow/runs", { method: "POST", body: "{}" }).then((r) => r.status));
  if (status !== 403) throw new Error("status " + status);
  ok(step);

  step = "the runs list, filtered by state";
  await page.click('header a[data-nav="runs"]');
  await page.waitForFunction(() => document.querySelectorAll("#runs tr").length >= 3);
  await page.screenshot({ path: `${shots}/runs.png` });
  await page.selectOption("#state-filter", "failed");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("#runs tr")];
    return rows.length === 1 && rows[0].textContent.includes("Broken");
  });
  ok(step);

  step = "the flows page";
  await page.click('header a[data-nav="flows"]');
  await page.waitForSelector('[data-flow="Slow"] table');
  await page.screenshot({ path: `${shots}/flows.png` });
  ok(step);

  step = "what a user types in a form stays while runs change";
  await page.fill("#param-label", "typed by hand");
  await page.click("h1");
  const before = await page.$$eval('[data-flow="Broken"] .recent tr', (rows) => rows.length);
  await page.evaluate(() => fetch("/api/flows/Broken/runs", {
    method: "POST", body: "{}",
    headers: { "X-Wvflow-Token": sessionStorage.getItem("wvflow-token") },
  }));
  await page.waitForFunction((n) =>
    document.querySelectorAll('[data-flow="Broken"] .recent tr').length > n, before, { timeout: 20000 });
  const typed = await page.inputValue("#param-label");
  if (typed !== "typed by hand") throw new Error("the field now reads: " + typed);
  ok(step);

  step = "a malformed address does not stop the page";
  await page.goto(url.split("?")[0] + "#/runs/%");
  await page.waitForSelector("#dag-box");
  await page.goto(url.split("?")[0] + "#/runs");
  await page.waitForSelector("#runs tr");
  ok(step);

  if (errors.length) throw new Error("script errors in the page: " + errors.join("; "));
  console.log("runs: " + [slow, broken, long].join(" "));
} catch (e) {
  console.error(`failed: ${step}: ${e.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
