// Note latency page to page, beside `backchannel watch`, and memory at idle and with 1,000
// notes in the channel; run by crates/cli/tests/ui_measure.rs (see there for the setup).
// Every time is taken on this script's one clock (performance.now()).
import { chromium } from "playwright-core";
import readline from "node:readline";

const A_URL = process.env.A_URL, B_URL = process.env.B_URL;
const WARMUP = 20, MEASURED = 200, LOADED = 1000, AGAIN = 50;
const run = Date.now().toString(36);

const watchSeen = new Map();
const pageSeen = new Map();
const waiters = [];
function settle() {
  for (let i = waiters.length - 1; i >= 0; i--) {
    if (waiters[i].done()) { waiters[i].resolve(); waiters.splice(i, 1); }
  }
}
const until = (done, what) => new Promise((resolve, reject) => {
  if (done()) return resolve();
  const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 30_000);
  waiters.push({ done, resolve: () => { clearTimeout(timer); resolve(); } });
});

let ok = null;
const harness = readline.createInterface({ input: process.stdin });
harness.on("line", (line) => {
  const at = performance.now();
  if (line === "@@ok" && ok) { const r = ok; ok = null; r(); return; }
  const m = line.match(/note-(\d+)-(\w+)/);
  if (line.startsWith("@@watch") && m && m[2] === run && !watchSeen.has(+m[1])) { watchSeen.set(+m[1], at); settle(); }
});
const memory = (label) => new Promise((resolve) => { ok = resolve; console.log(`@@rss ${label}`); });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const pa = await (await browser.newContext()).newPage();
const pb = await (await browser.newContext()).newPage();
await pb.exposeFunction("__arrived", (text) => {
  const at = performance.now();
  const m = text.match(/note-(\d+)-(\w+)/);
  if (m && m[2] === run && !pageSeen.has(+m[1])) { pageSeen.set(+m[1], at); settle(); }
});
for (const [page, url] of [[pa, A_URL], [pb, B_URL]]) {
  await page.goto(url);
  await page.goto(new URL(url).origin + "/talk/bench");
}
const observe = () => pb.evaluate(() => {
  new MutationObserver((changes) => {
    for (const c of changes) for (const n of c.addedNodes) {
      if (n.nodeType === 1 && n.matches("li.note")) window.__arrived(n.querySelector(".text").textContent);
    }
  }).observe(document.querySelector("#timeline"), { childList: true });
});
await observe();
// Both pages follow their events (the script marks the page once the stream said hello).
for (const page of [pa, pb]) await page.waitForSelector("html[data-live=on]");

async function send(i) {
  const t0 = performance.now();
  await pa.evaluate((text) => {
    const form = document.querySelector("#compose");
    form.querySelector("#text").value = text;
    form.requestSubmit();
  }, `note-${i}-${run} from Alice`);
  await until(() => pageSeen.has(i) && watchSeen.has(i), `note ${i}`);
  return [pageSeen.get(i) - t0, watchSeen.get(i) - t0];
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]; };
const summary = (rows) => ({
  page_p50_ms: +pct(rows.map((r) => r[0]), 50).toFixed(2), page_p99_ms: +pct(rows.map((r) => r[0]), 99).toFixed(2),
  watch_p50_ms: +pct(rows.map((r) => r[1]), 50).toFixed(2), watch_p99_ms: +pct(rows.map((r) => r[1]), 99).toFixed(2),
  notes: rows.length,
});

await memory("idle, page open");
let n = 0;
for (; n < WARMUP; n++) await send(n);
const small = [];
for (let k = 0; k < MEASURED; k++, n++) small.push(await send(n));
console.log(`latency over ${MEASURED} notes (channel of ${n} notes):`, JSON.stringify(summary(small)));

// Fill the channel to 1,000 notes, sent back to back through the same endpoint the page uses.
await pa.evaluate(async ({ from, to, run }) => {
  const action = document.querySelector("#compose").action;
  for (let i = from; i < to; i++) {
    const r = await fetch(action, { method: "POST", headers: { "x-requested-with": "fetch" }, body: new URLSearchParams({ text: `note-${i}-${run} from Alice` }) });
    if (!r.ok) throw new Error(await r.text());
  }
}, { from: n, to: LOADED - AGAIN, run });
n = LOADED - AGAIN;
await until(() => pageSeen.has(n - 1) && watchSeen.has(n - 1), "the bulk notes");
const loaded = [];
for (; n < LOADED; n++) loaded.push(await send(n));
console.log(`latency over ${AGAIN} notes (channel of ${LOADED} notes):`, JSON.stringify(summary(loaded)));
await memory(`${LOADED} notes in the channel, page open`);
const t0 = performance.now();
await pb.reload();
await pb.waitForSelector(`li.note:has-text("note-${LOADED - 1}-${run}")`);
const reload = performance.now() - t0;
console.log(`reloading Bao's page with ${LOADED} notes: ${reload.toFixed(0)} ms`);
await memory(`${LOADED} notes, after a reload`);
console.log("@@result " + JSON.stringify({ small: summary(small), loaded: summary(loaded), reload_ms: Math.round(reload) }));
await browser.close();
harness.close();
process.stdin.destroy();
