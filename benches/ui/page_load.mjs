// Page load times of `wvflow ui`, in the system Chromium: node page_load.mjs URL [RUN_ID STAGES]
// URL is what `wvflow ui` printed. Prints the median of 5 fresh loads of the runs list
// (until its rows are drawn) and, given a run, of that run's page (until all STAGES nodes
// of its DAG are drawn and coloured).
import { createRequire } from "node:module";
// The driver scripts/test.sh installs for the UI tests.
const { chromium } = createRequire(import.meta.url)("../../tests/ui/node_modules/playwright-core");

const [url, runId, stages] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(address, ready) {
  const times = [];
  for (let i = 0; i < 5; i++) {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const t0 = Date.now();
    await page.goto(address);
    await page.waitForFunction(ready, undefined, { timeout: 60000, polling: 10 });
    times.push(Date.now() - t0);
    await page.close();
  }
  return median(times);
}

const base = url.split("/?")[0];
const list = await measure(url, () => document.querySelectorAll("#runs tr").length > 0);
console.log(`runs list: ${list} ms`);
if (runId) {
  const n = Number(stages);
  const run = await measure(`${url}#/runs/${encodeURIComponent(runId)}`,
    new Function(`return document.querySelectorAll('g.node[data-state="success"]').length === ${n}`));
  console.log(`run page with ${n} stages: ${run} ms`);
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) await fetch(`${base}/api/runs/${encodeURIComponent(runId)}`).then((r) => r.text());
  console.log(`GET /api/runs/RUN: ${((Date.now() - t0) / 5).toFixed(1)} ms`);
}
await browser.close();
