// The browser suite of Backchannel's local web app, run by crates/web/tests/browser.rs, which
// starts a relay and two apps (Alice, Delegation A; Bao, Delegation B) and passes their
// addresses in the environment. Two browser contexts negotiate through them: contacts and safety
// numbers, a direct channel with notes both ways arriving live (also after one app restarts),
// phases, a non-paper v1 → v2, a probe, a proposal ratified by both, exported and checked; the
// crisis hotline (two hosts, their states, delivery marks, a hotline channel, adding, allowing
// and refusing to leave the last host). Every
// main screen is checked with axe-core and photographed. No sleeps: every wait is for something
// the page shows.
import { chromium } from "playwright-core";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import readline from "node:readline";
import { createRequire } from "node:module";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing ${name}`);
  return v;
};
const A_URL = env("A_URL"), B_URL = env("B_URL"), C_URL = env("C_URL"), RELAY = env("RELAY"), RELAY2 = env("RELAY2"), PASS = env("PASSPHRASE");
const OUT = env("OUT"), SHOTS = env("SHOTS"), FAILURES = env("FAILURES");
const originOf = (u) => new URL(u).origin;
const A = originOf(A_URL), B = originOf(B_URL), C = originOf(C_URL);
const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const WAIT = 30_000;

const stdin = readline.createInterface({ input: process.stdin });
const fromHarness = [];
let wake = null;
stdin.on("line", (l) => { fromHarness.push(l); if (wake) wake(); });
async function harness(line, answer) {
  console.log(line);
  while (!fromHarness.includes(answer)) await new Promise((r) => (wake = r));
  fromHarness.splice(fromHarness.indexOf(answer), 1);
}

let step = "start";
const t0 = Date.now();
function log(s) {
  step = s;
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${s}`);
}
function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
}

const browser = await chromium.launch({
  executablePath: env("CHROMIUM"),
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
const external = [];
async function context(origin) {
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 }, acceptDownloads: true });
  ctx.on("request", (r) => {
    const u = r.url();
    if (![A, B, C].some((o) => u.startsWith(o + "/"))) external.push(u);
  });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`${origin}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${origin}: script error ${e.message}`));
  return { ctx, page };
}
const a = await context(A);
const b = await context(B);
const c = await context(C);
const pa = a.page, pb = b.page, pc = c.page;

/** axe-core on the page: no serious or critical violation. */
async function axe(page, screen) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  const all = bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
  check(bad.length === 0, `accessibility of ${screen}:\n  ${all.join("\n  ")}`);
}

/** The served HTML references nothing outside the app. */
async function ownUrlsOnly(page, screen) {
  const html = await page.content();
  const refs = [...html.matchAll(/\b(?:src|href|action|srcset|poster|data)\s*=\s*["']?\s*(?:https?:)?\/\/[^"'\s>]+/gi)].map((m) => m[0]);
  const foreign = refs.filter((r) => ![A, B, C].some((o) => r.includes(o.replace("http:", ""))));
  check(foreign.length === 0, `${screen} references ${foreign.join(", ")}`);
  check(!/url\(\s*["']?https?:/i.test(html), `${screen} loads a style from elsewhere`);
}

async function screen(page, name) {
  await axe(page, name);
  await ownUrlsOnly(page, name);
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function go(page, origin, p) {
  await page.goto(origin + p);
}

/** A request made by hand, with any headers (node's http, so Host can be anything). */
function raw(method, url, headers, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request({ method, host: u.hostname, port: u.port, path: u.pathname + u.search, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    if (body) req.write(body);
    req.end();
  });
}

try {
  log("first run: create both parties");
  await pa.goto(A_URL);
  check(new URL(pa.url()).search === "", "the token left the address bar");
  await pa.waitForSelector("form#create");
  await pa.fill("#passphrase", "abc");
  await pa.waitForFunction(() => document.querySelector("#strength").textContent.startsWith("Weak"));
  await pa.fill("#passphrase", "");
  await screen(pa, "first-run");
  // Two passphrases that differ: said beside the form, the name kept, the passphrase not.
  await pa.fill("#name", "Alice");
  await pa.fill("#side", "Delegation A");
  await pa.fill("#passphrase", PASS);
  await pa.fill("#again", PASS + "!");
  await pa.press("#again", "Enter");
  await pa.waitForSelector("form#create .problem:has-text('The two passphrases differ')");
  check((await pa.inputValue("#name")) === "Alice" && (await pa.inputValue("#passphrase")) === "", "kept what may be kept");
  await pa.fill("#passphrase", PASS);
  await pa.fill("#again", PASS);
  await pa.press("#again", "Enter");
  await pa.waitForURL(/\/contacts$/);
  // Bao's with the keyboard alone: the name field has the focus, Tab moves on, Enter sends.
  await pb.goto(B_URL);
  await pb.waitForSelector("form#create");
  for (const [text, tabs] of [["Bao", 1], ["Delegation B", 1], [PASS, 1], [PASS, 0]]) {
    await pb.keyboard.type(text);
    for (let i = 0; i < tabs; i++) await pb.keyboard.press("Tab");
  }
  await pb.keyboard.press("Enter");
  await pb.waitForURL(/\/contacts$/);
  for (const page of [pa, pb]) check(!(await page.content()).includes(PASS), "the passphrase never comes back");

  log("the app's own security");
  const cookies = await a.ctx.cookies(A);
  const cookie = cookies.map((c) => `${c.name}=${c.value}`).join("; ");
  check(cookies.every((c) => c.httpOnly && c.sameSite === "Strict"), "the cookie is HttpOnly and SameSite=Strict");
  const host = new URL(A).host;
  check((await raw("GET", A + "/contacts", { host })) === 401, "no token: 401");
  check((await raw("GET", A + "/contacts", { host, cookie: "x=y" })) === 401, "a wrong cookie: 401");
  check((await raw("GET", A + "/?token=" + "0".repeat(64), { host })) === 401, "a wrong token: 401");
  check((await raw("GET", A + "/contacts", { host: "evil.example:" + new URL(A).port, cookie })) === 403, "foreign Host: 403");
  check((await raw("GET", A + "/contacts", { host, cookie })) === 200, "with the cookie: 200");
  const form = "name=evil&mode=direct";
  const post = (headers) => raw("POST", A + "/channels", { host, cookie, "content-type": "application/x-www-form-urlencoded", ...headers }, form);
  check((await post({ origin: "http://evil.example" })) === 403, "a cross-origin POST: 403");
  check((await post({ origin: "null", "sec-fetch-site": "cross-site" })) === 403, "a cross-site POST without origin: 403");
  check((await post({})) === 403, "a POST that says nothing of its origin: 403");
  // In the browser: a page of another origin on the same site (so the cookie goes along)
  // submits a form to Bao's app; the Origin check refuses it.
  const evil = A + "/evil-page";
  await b.page.route(evil, (route) => route.fulfill({
    contentType: "text/html",
    body: `<form method="post" action="${B}/channels"><input name="name" value="evil"><input name="mode" value="direct"></form>`,
  }));
  await pb.goto(evil);
  const [refused] = await Promise.all([pb.waitForResponse(`${B}/channels`), pb.evaluate(() => document.forms[0].submit())]);
  check(refused.status() === 403, `a cross-origin form post in the browser: ${refused.status()}`);
  await b.page.unroute(evil);
  await go(pb, B, "/channels");
  check(!(await pb.content()).includes("evil"), "the refused post created nothing");

  log("invite over two hosts and accept");
  await go(pa, A, "/contacts");
  await pa.fill("#relay", RELAY);
  // Another host field, with the keyboard: the new field takes the focus.
  await pa.focus("form#invite button[name=more]");
  await pa.keyboard.press("Enter");
  await pa.waitForSelector("#invite-relay-2:focus");
  check((await pa.inputValue("#relay")) === RELAY, "the first host was kept");
  await pa.keyboard.type(RELAY2);
  await pa.click("form#invite button[type=submit]:not([name])");
  const invitation = await pa.inputValue("#invitation");
  check(invitation.startsWith("backchannel:"), "an invitation");
  await screen(pa, "contacts");
  await go(pb, B, "/contacts");
  // An error is shown where it happened, in words that say what to do.
  await pb.fill("#text", "backchannel:not-an-invitation");
  await pb.click("form#accept button[type=submit]");
  await pb.waitForSelector("form#accept .problem:has-text('This invitation cannot be used')");
  await pb.fill("#text", invitation);
  await pb.click("form#accept button[type=submit]");
  await pb.waitForURL(/\/contacts\/Alice%40Delegation%20A$/);
  await pb.waitForSelector(".sub:has-text('2 hosts')");
  // Alice's page takes in Bao's answer by itself.
  await pa.waitForSelector("#live a:has-text('Bao')", { timeout: WAIT });

  log("safety numbers, equal in both pages, and verify");
  await go(pa, A, "/contacts/" + encodeURIComponent("Bao@Delegation B"));
  const snA = await pa.getAttribute(".safety-large", "aria-label");
  const snB = await pb.getAttribute(".safety-large", "aria-label");
  check(snA && snA === snB, `safety numbers ${snA} / ${snB}`);
  check(await pa.evaluate(() => document.querySelector("img.qr").naturalWidth > 0), "the QR code draws");
  await screen(pa, "safety-number");
  for (const page of [pa, pb]) {
    await page.focus("form#verify button");
    await page.keyboard.press("Enter");
    await page.waitForSelector(".badge.good:has-text('verified')");
  }

  log("a direct channel");
  await go(pa, A, "/channels");
  await pa.fill("#name", "talks");
  await pa.click("form#create button[type=submit]");
  await pa.waitForURL(/\/channels\/talks\/members$/);
  await pa.selectOption("#contact", "Bao@Delegation B");
  await pa.click("form#add button[type=submit]");
  await pa.waitForSelector("#live td:has-text('Bao')");
  await screen(pa, "members");
  await go(pb, B, "/channels");
  await pb.waitForSelector("#live a:has-text('talks')", { timeout: WAIT });
  await screen(pb, "channels");

  log("notes both ways, live");
  await go(pa, A, "/talk/talks");
  await go(pb, B, "/talk/talks");
  await pa.fill("#text", "We could consider a phased approach.");
  await pa.press("#text", "Control+Enter");
  await pb.waitForSelector("li.note:has-text('We could consider a phased approach.')", { timeout: WAIT });
  await pb.fill("#text", "Phasing is of interest. <b>Who</b> verifies?");
  await pb.click("form#compose button[type=submit]");
  await pa.waitForSelector("li.note:has-text('Phasing is of interest. <b>Who</b> verifies?')", { timeout: WAIT });
  // Alice's note: stored by both hosts, then delivered (Bao's receipt), shown as it happens.
  const ours = "li.note.out:has-text('We could consider a phased approach.')";
  await pa.waitForSelector(`${ours} .delivery[data-delivery=delivered]`, { timeout: WAIT });
  const hostsOf = (r) => new URL(r.replace(/^bcr:/, "http:")).host;
  await pa.fill("#text", "Both hosts carry this.");
  await pa.press("#text", "Control+Enter");
  const both = "li.note.out:has-text('Both hosts carry this.')";
  await pa.waitForSelector(`${both} .delivery`);
  await pa.waitForSelector(`${both} .delivery[data-delivery=delivered]`, { timeout: WAIT });
  await pb.waitForSelector("li.note:has-text('Both hosts carry this.')");
  check((await pb.locator("li.note:has-text('Both hosts carry this.')").count()) === 1, "a note over two hosts is shown once");

  log("a contact's hosts: both up, both ways");
  await go(pa, A, "/contacts/" + encodeURIComponent("Bao@Delegation B") + "/routes");
  for (const h of [RELAY, RELAY2]) await pa.waitForSelector(`table.routes tr[data-host='${hostsOf(h)}']`);
  await pa.waitForFunction(() => document.querySelectorAll("table.routes tr[data-host] [data-state=up]").length === 4, null, { timeout: WAIT });
  await screen(pa, "routes");
  await go(pa, A, "/talk/talks");
  check((await pa.locator("li.note b").count()) === 0, "a peer's markup is shown as text");
  check((await pb.inputValue("#text")) === "", "the composer is cleared after sending");

  log("a draft survives a reload");
  await pb.fill("#text", "An unfinished thought");
  await pb.reload();
  check((await pb.inputValue("#text")) === "An unfinished thought", "the draft came back");
  await pb.fill("#text", "");
  await pb.dispatchEvent("#text", "input");

  log("the page reconnects after the app restarts");
  await harness("@@restart b", "restarted");
  await pb.waitForFunction(() => /Reconnected/.test(document.querySelector("#connection").textContent), null, { timeout: WAIT });
  await pa.fill("#text", "Are you still there?");
  await pa.press("#text", "Control+Enter");
  await pb.waitForSelector("li.note:has-text('Are you still there?')", { timeout: WAIT });
  await screen(pb, "conversation");

  log("phases: propose and consent");
  await go(pa, A, "/channels/talks/phase");
  await pa.click("form#phase button[type=submit]");
  await pa.waitForSelector("#live h3:has-text('Proposed: move to drafting')");
  await go(pb, B, "/channels/talks/phase");
  await pb.waitForSelector("form#phase button:has-text('Consent to drafting')", { timeout: WAIT });
  await screen(pb, "phase");
  await pb.click("form#phase button[type=submit]");
  for (const page of [pa, pb]) await page.waitForSelector("#live h2:has-text('Now: drafting')", { timeout: WAIT });

  log("a non-paper, v1 then v2, and its diff");
  await go(pa, A, "/channels/talks/papers");
  const v1 = "Framework for talks\n\n1. Phased withdrawal over 12 months.\n2. Verification by a neutral monitor.\n";
  const v2 = "Framework for talks\n\n1. Phased withdrawal over 18 months.\n2. Verification by a neutral monitor.\n3. Talks resume in Geneva.\n";
  for (const text of [v1, v2]) {
    await go(pa, A, "/channels/talks/papers");
    await pa.fill("#title", "Framework");
    await pa.fill("#paper-text", text);
    await pa.click("form#put button[type=submit]");
    await pa.waitForURL(/\/papers\/Framework\?/);
  }
  await pa.waitForSelector("table.diff td.del:has-text('12 months')");
  await pa.waitForSelector("table.diff td.ins:has-text('18 months')");
  await pa.waitForSelector("div.diff.inline .ins:has-text('Talks resume in Geneva.')");
  await go(pb, B, "/channels/talks/papers");
  await pb.waitForSelector("#live a:has-text('What changed from version 1 to 2')", { timeout: WAIT });
  await pb.click("#live a:has-text('What changed from version 1 to 2')");
  await pb.waitForSelector("table.diff td.ins:has-text('18 months')");
  await screen(pb, "nonpaper-diff");
  await go(pa, A, "/channels/talks/papers");
  await screen(pa, "nonpapers");

  log("a probe, with its result on both sides");
  await go(pa, A, "/channels/talks/probes");
  await pa.fill("#issue", "months until withdrawal");
  await pa.fill("#max", "120");
  await pa.click("form#propose button[type=submit]");
  await pa.waitForSelector("article.probe[data-status=proposed]");
  await pa.fill("article.probe input[name=value]", "97");
  await pa.click("article.probe form[action$='/input'] button");
  await pa.waitForSelector("article.probe p.hint:has-text('never sent')");
  check(!(await pa.content()).includes('value="97"'), "the private input is not echoed");
  await go(pb, B, "/channels/talks/probes");
  await pb.waitForSelector("article.probe button:has-text('Accept')", { timeout: WAIT });
  await pb.click("article.probe button:has-text('Accept')");
  await pb.waitForSelector("article.probe input[name=value]");
  await pb.fill("article.probe input[name=value]", "12");
  await pb.click("article.probe form[action$='/input'] button");
  for (const page of [pa, pb]) {
    await page.waitForSelector("article.probe[data-status=done]:has-text('Yes: the positions overlap')", { timeout: WAIT });
  }
  await screen(pb, "probes");

  log("a proposal, ratified by both");
  await go(pa, A, "/channels/talks/proposals");
  await pa.fill("#title", "Framework");
  await pa.fill("#proposal-text", v2);
  await pa.click("form#propose button[type=submit]");
  await pa.waitForSelector("article.proposal");
  // The confirmation is required: without it, nothing is signed.
  // (submit() skips the browser's own check of the required box, as a script or an old browser would)
  await Promise.all([pa.waitForNavigation(), pa.evaluate(() => document.querySelector("form.ratify").submit())]);
  await pa.waitForSelector("form.ratify .problem:has-text('Tick the box first')");
  await pa.check("form.ratify input[type=checkbox]");
  await pa.click("form.ratify button");
  await pa.waitForSelector("article.proposal .missing:has-text('Delegation B')");
  await go(pb, B, "/channels/talks/proposals");
  await pb.waitForSelector("article.proposal form.ratify", { timeout: WAIT });
  await screen(pb, "proposals");
  await pb.check("form.ratify input[type=checkbox]");
  await pb.click("form.ratify button");
  for (const page of [pa, pb]) {
    await page.waitForSelector("article.proposal .badge.good:has-text('ratified by every side')", { timeout: WAIT });
  }

  log("export as a zip and into a folder; check both");
  const [download] = await Promise.all([pa.waitForEvent("download"), pa.click("a:has-text('Download the agreement (zip)')")]);
  const zip = path.join(OUT, "agreement.zip");
  await download.saveAs(zip);
  const folder = path.join(OUT, "agreement");
  await pa.fill("article.proposal input[name=dir]", folder);
  await pa.click("article.proposal form[action$='/export'] button");
  await pa.waitForSelector(".done:has-text('Saved into')");
  check(fs.existsSync(path.join(folder, "manifest.json")), "the folder holds the manifest");
  await go(pa, A, "/agreements/verify");
  await pa.fill("#dir", folder);
  await pa.click("form#folder button");
  await pa.waitForSelector(".verdict h2:has-text('holds')");
  await pa.waitForSelector(".verdict li:has-text('your own seal')");
  await go(pb, B, "/agreements/verify");
  await pb.setInputFiles("#zipfile", zip);
  await pb.click("form#zip button");
  await pb.waitForSelector(".verdict h2:has-text('holds')");
  await pb.waitForSelector(".verdict li:has-text('the seal of your contact')");
  await screen(pb, "verify");
  // A changed text no longer holds.
  fs.writeFileSync(path.join(OUT, "changed.txt"), "x");
  const tampered = path.join(OUT, "tampered");
  fs.cpSync(folder, tampered, { recursive: true });
  const manifest = JSON.parse(fs.readFileSync(path.join(tampered, "manifest.json"), "utf8"));
  fs.appendFileSync(path.join(tampered, manifest.text_file), "4. And one more thing.\n");
  await pa.fill("#dir", tampered);
  await pa.click("form#folder button");
  await pa.waitForSelector(".verdict h2:has-text('does NOT hold')");

  log("a shuttle: the intermediary passes a side's note on, rephrased");
  await pc.goto(C_URL);
  await pc.fill("#name", "Omar");
  await pc.fill("#side", "Mediator");
  await pc.fill("#passphrase", PASS);
  await pc.fill("#again", PASS);
  await pc.press("#again", "Enter");
  await pc.waitForURL(/\/contacts$/);
  for (const [page, origin, name] of [[pa, A, "Alice"], [pb, B, "Bao"]]) {
    await go(pc, C, "/contacts");
    await pc.fill("#relay", RELAY);
    await pc.click("form#invite button[type=submit]");
    const text = await pc.inputValue("#invitation");
    await go(page, origin, "/contacts");
    await page.fill("#text", text);
    // Alice answers over a host she names; Bao over the invitation's.
    if (name === "Alice") await page.fill("#accept-relay-1", RELAY);
    await page.click("form#accept button[type=submit]:not([name])");
    await page.waitForURL(/\/contacts\/Omar%40Mediator$/);
    await go(pc, C, "/contacts");
    await pc.waitForSelector(`#live a:has-text('${name}')`, { timeout: WAIT });
  }
  await go(pc, C, "/channels");
  await pc.fill("#name", "muscat");
  await pc.check("input[name=mode][value=shuttle]");
  await pc.click("form#create button[type=submit]");
  await pc.waitForURL(/\/channels\/muscat\/members$/);
  for (const who of ["Alice@Delegation A", "Bao@Delegation B"]) {
    await pc.selectOption("#contact", who);
    await pc.click("form#add button[type=submit]");
    await pc.waitForSelector(`#live td:has-text('${who.split("@")[0]}')`);
  }
  await go(pa, A, "/channels");
  await pa.waitForSelector("#live a:has-text('muscat')", { timeout: WAIT });
  await go(pa, A, "/talk/muscat");
  await go(pc, C, "/talk/muscat");
  await go(pb, B, "/talk/muscat");
  await pa.fill("#text", "Our principals could consider a phased withdrawal.");
  await pa.press("#text", "Control+Enter");
  const received = "li.note:has-text('Our principals could consider a phased withdrawal.')";
  await pc.waitForSelector(received, { timeout: WAIT });
  await pc.click(`${received} summary`);
  await pc.check(`${received} input[name=to][value='Bao@Delegation B']`);
  await pc.fill(`${received} textarea[name=rephrase]`, "Delegation A signals openness to a phased withdrawal.");
  await screen(pc, "shuttle");
  await pc.click(`${received} form button[type=submit]`);
  await pb.waitForSelector("li.note:has-text('Delegation A signals openness to a phased withdrawal.')", { timeout: WAIT });
  const mark = await pb.textContent("li.note:has-text('Delegation A signals openness') .relayed");
  check(/Relayed by Omar \(rephrased\)/.test(mark), `the relayed mark: ${mark}`);
  check(!(await pb.content()).includes("Our principals could consider"), "the side's own words stay with the intermediary");

  log("leaving the only host: the engine's refusal, where it happened");
  await go(pa, A, "/contacts/" + encodeURIComponent("Omar@Mediator") + "/routes");
  await pa.click("table.routes a:has-text('Leave this host')");
  await pa.waitForSelector("#drop-h:focus");
  await pa.click("form#drop button[type=submit]");
  await pa.waitForSelector("form#drop .problem:has-text('is the only host between you and Omar')");
  check((await pa.locator("table.routes tr[data-host]").count()) === 1, "the host is still there");

  log("a hotline channel: its heartbeat, and every member's hosts, live");
  await go(pa, A, "/channels");
  await pa.fill("#name", "crisis");
  await pa.check("#hotline");
  await pa.fill("#heartbeat", "2");
  await pa.fill("#path_test", "1");
  await pa.click("form#create button[type=submit]");
  await pa.waitForURL(/\/channels\/crisis\/members$/);
  await pa.waitForSelector("#hotline-rule:has-text('a heartbeat every 2 seconds')");
  await pa.selectOption("#contact", "Bao@Delegation B");
  await pa.click("form#add button[type=submit]");
  await pa.waitForSelector("#live td:has-text('Bao')");
  await go(pb, B, "/channels");
  await pb.waitForSelector("#live a:has-text('crisis')", { timeout: WAIT });
  await pb.waitForSelector("#live .badge.hot");
  await go(pa, A, "/talk/crisis");
  await pa.waitForSelector("#line:has-text('a heartbeat every 2 seconds')");
  await pa.waitForFunction(() => document.querySelectorAll("#line li[data-member=Bao] [data-state=up]").length === 4, null, { timeout: WAIT });
  await pa.fill("#text", "Confirm you read me.");
  await pa.press("#text", "Control+Enter");
  await pa.waitForSelector("li.note.out:has-text('Confirm you read me.') .delivery[data-delivery=delivered]", { timeout: WAIT });
  await screen(pa, "hotline");
  await go(pb, B, "/talk/muscat");

  log("a second host for a contact: added on one side, allowed on the other");
  await go(pa, A, "/contacts/" + encodeURIComponent("Omar@Mediator") + "/routes");
  await pa.fill("#relay", RELAY2);
  await pa.press("#relay", "Enter");
  await pa.waitForSelector(`table.routes tr[data-host='${hostsOf(RELAY2)}']`);
  check((await pa.locator("table.routes tr[data-host]").count()) === 2, "two hosts now");
  await go(pc, C, "/contacts/" + encodeURIComponent("Alice@Delegation A") + "/routes");
  const allow = `table.routes tr[data-host='${hostsOf(RELAY2)}'] button:has-text('Allow')`;
  await pc.waitForSelector(allow, { timeout: WAIT });
  await pc.waitForSelector("table.routes .note:has-text('Needs your allow')");
  await pc.focus(allow);
  await pc.keyboard.press("Enter");
  await pc.waitForURL(/\/routes$/);
  // The question goes; the host is Omar's to use now.
  await pc.waitForFunction(() => !document.querySelector("table.routes .note strong"), null, { timeout: WAIT });
  check((await pc.locator(allow).count()) === 0, "nothing left to allow");

  log("after a restart without the passphrase, the open page asks for it and comes back");
  await harness("@@restart-locked b", "restarted");
  await pb.waitForSelector("form#unlock", { timeout: WAIT });
  await pb.fill("#passphrase", "not the passphrase");
  await pb.press("#passphrase", "Enter");
  await pb.waitForSelector("form#unlock .problem:has-text('does not unlock')");
  check((await pb.inputValue("#passphrase")) === "", "a passphrase is never shown again");
  await screen(pb, "unlock");
  await pb.fill("#passphrase", PASS);
  await pb.press("#passphrase", "Enter");
  await pb.waitForURL(/\/talk\/muscat$/);
  await pb.waitForSelector("li.note:has-text('Delegation A signals openness')");

  check(problems.length === 0, `the pages reported:\n  ${problems.join("\n  ")}`);
  check(external.length === 0, `requests left the app: ${external.join(", ")}`);
  log("all passed");
} catch (e) {
  console.error(`FAILED at "${step}": ${e.stack || e}`);
  for (const [name, page] of [["a", pa], ["b", pb], ["c", pc]]) {
    const shot = path.join(FAILURES, `failure-${name}.png`);
    await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
    console.error(`page ${name}: ${page.url()} (screenshot ${shot})`);
  }
  process.exitCode = 1;
} finally {
  stdin.close();
  await browser.close();
}
