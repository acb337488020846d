// The dashboard in a real browser: headless Chromium (Debian's, at
// /usr/bin/chromium) driven by playwright-core against a running wasmrpc
// server. Run by the end-to-end test tests/e2e/dashboard.rs, which starts the
// server with `--admin-token`, deploys math, json, markup (test/markup: HTML
// in its docs, names and enum values) and flip (test/v1, then test/v2), and
// passes, in the environment:
//
//   DASHBOARD_URL          the server's base URL
//   DASHBOARD_TOKEN        its admin token
//   DASHBOARD_UPLOAD       a .wasm file to deploy from the page
//   DASHBOARD_SCREENSHOTS  where to save screenshots of the main pages
//
// NODE_PATH must hold playwright-core (the Makefile installs it). One browser
// for every check; each check prints "ok" or "FAIL" and the script ends with
// "N passed, N failed" and exit status 1 when any failed.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

// Through require, which honours NODE_PATH (import does not).
const { chromium } = createRequire(import.meta.url)("playwright-core");

/** The whole run's bound: a hung browser fails the test instead of hanging it. */
const OVERALL_TIMEOUT_MS = 120_000;
/** How long one step (a click, a wait for an element) may take. */
const STEP_TIMEOUT_MS = 15_000;

const base = process.env.DASHBOARD_URL;
const token = process.env.DASHBOARD_TOKEN;
const upload = process.env.DASHBOARD_UPLOAD;
const shots = process.env.DASHBOARD_SCREENSHOTS;
if (!base || !token || !upload || !shots) {
  console.error("set DASHBOARD_URL, DASHBOARD_TOKEN, DASHBOARD_UPLOAD and DASHBOARD_SCREENSHOTS");
  process.exit(2);
}
setTimeout(() => {
  console.error(`FAIL: the browser test still ran after ${OVERALL_TIMEOUT_MS} ms`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS).unref();
mkdirSync(shots, { recursive: true });
for (const old of readdirSync(shots).filter((f) => f.startsWith("failed-"))) rmSync(path.join(shots, old));

/** A JSON-RPC call from outside the browser; answers the response object. */
async function rpc(method, params) {
  const response = await fetch(`${base}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", method, params, id: 1 }),
  });
  return response.json();
}

// Chromium writes its profile to a fresh directory, removed at the end; no
// network but loopback, so nothing that phones home (background networking,
// component updates, sync, QUIC probes).
const profile = mkdtempSync(path.join(tmpdir(), "wasmrpc-dashboard-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1200, height: 800 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
context.setDefaultTimeout(STEP_TIMEOUT_MS);
const page = context.pages()[0] ?? (await context.newPage());

// Everything the page logs as an error, every uncaught exception, every
// dialog (alert, confirm, prompt: the page uses none of them).
const consoleErrors = [];
/** While set, a message matching it is expected (a refused request the check provokes). */
let expectedError = null;
page.on("console", (message) => {
  if (message.type() !== "error") return;
  if (expectedError && expectedError.test(message.text())) return;
  consoleErrors.push(`console: ${message.text()}`);
});
page.on("pageerror", (err) => consoleErrors.push(`page error: ${err.message}`));
const dialogs = [];
page.on("dialog", async (dialog) => {
  dialogs.push(`${dialog.type()}: ${dialog.message()}`);
  await dialog.dismiss();
});

const method = (name) => page.locator(`section.method[data-method="${name}"]`);

/** Opens a method's "try it" form on its procedure's page. */
async function openTryIt(procedure, name) {
  await page.goto(`${base}/#/p/${procedure}`);
  const section = method(name);
  const details = section.locator("details.try-it");
  if (!(await details.evaluate((d) => d.open))) await section.locator("summary").click();
  return section;
}

/** Clicks Send and waits for the answer; answers `{ kind, code, head, json }`. */
async function send(section) {
  await section.locator(".answer-box").evaluate((box) => box.replaceChildren());
  await section.getByRole("button", { name: "Send" }).click();
  const answer = section.locator(".answer");
  await answer.waitFor();
  return {
    kind: (await answer.getAttribute("class")).includes("error") ? "error" : "ok",
    code: await answer.getAttribute("data-code"),
    head: await answer.locator(".answer-head").innerText(),
    json: JSON.parse(await answer.locator(".answer-json").innerText()),
  };
}

/** Confirms the page's confirm dialog (a <dialog>, not window.confirm). */
async function confirm(expectedTitle) {
  const dialog = page.locator("dialog#confirm");
  await dialog.waitFor();
  assert.match(await dialog.locator("h2").innerText(), expectedTitle);
  await dialog.locator("#confirm-ok").click();
}

const checks = [];
const check = (name, run) => checks.push({ name, run });

check("the list shows the examples, live", async () => {
  await page.goto(`${base}/`);
  for (const name of ["math", "json", "markup", "flip"]) {
    await page.locator(`tr[data-name="${name}"]`).waitFor();
  }
  const flip = page.locator('tr[data-name="flip"] td');
  assert.equal(await flip.nth(1).innerText(), "v2");
  assert.equal(await page.locator('tr[data-name="math"] td').nth(2).innerText(), "6", "math has six methods");
  await page.locator("#status[data-state=live]").waitFor();
  // A call from elsewhere shows up without a reload.
  await page.evaluate(() => (window.notReloaded = true));
  const calls = page.locator('tr[data-name="math"] td').nth(5);
  const before = Number(await calls.innerText());
  assert.equal((await rpc("math.add", [1, 1])).result, 2);
  assert.equal((await rpc("math.add", ["x", 1])).error.code, -32602);
  await page.waitForFunction(
    (n) => Number(document.querySelector('tr[data-name="math"] td:nth-child(6)').textContent) === n,
    before + 2,
  );
  assert.match(await page.locator('tr[data-name="math"] td').nth(6).innerText(), /^1\s+code -32602 ×1$/);
  assert.notEqual(await page.locator('tr[data-name="math"] td').nth(7).innerText(), "–", "p50 of math");
  assert.equal(await page.evaluate(() => window.notReloaded), true, "the page reloaded");
  await page.screenshot({ path: path.join(shots, "list.png") });
});

/** Deploys (PUT) or removes (DELETE) `name` from outside the browser, with the admin token. */
async function admin(method, name, body) {
  const response = await fetch(`${base}/procedures/${name}`, {
    method,
    headers: { authorization: `Bearer ${token}` },
    body,
  });
  assert.ok(response.ok, `${method} ${name}: ${response.status} ${await response.text()}`);
}

/** GET /procedures requests the page makes, counted from the last reset. */
let listRequests = 0;
page.on("request", (request) => {
  if (request.method() === "GET" && new URL(request.url()).pathname === "/procedures") listRequests++;
});

check("the list follows deploys and removals as the server tells them, without polling", async () => {
  // The page subscribes over a WebSocket; the subscription's answer and then
  // one GET /procedures load the list.
  const subscribed = page.waitForEvent("websocket", (ws) => new URL(ws.url()).pathname === "/rpc").then((ws) =>
    ws.waitForEvent("framereceived", (frame) => /"result":"/.test(frame.payload)),
  );
  await page.goto(`${base}/`);
  await subscribed;
  await page.waitForFunction(() => document.querySelector('tr[data-name="math"]'));
  // Longer than the 2 s figures refresh, so a list still polled would have asked.
  await page.waitForTimeout(2500);
  listRequests = 0;
  await admin("PUT", "pushed", readFileSync(upload));
  await page.locator('tr[data-name="pushed"]').waitFor();
  assert.equal(await page.locator('tr[data-name="pushed"] td').nth(1).innerText(), "v1");
  await admin("DELETE", "pushed");
  await page.locator('tr[data-name="pushed"]').waitFor({ state: "detached" });
  assert.equal(listRequests, 0, "the page asked GET /procedures while subscribed");
});

check("without a WebSocket the list is polled as before", async () => {
  const fallback = await context.newPage();
  // The server's socket refused, as with --require-call-key.
  await fallback.routeWebSocket(/\/rpc$/, (ws) => ws.close({ code: 1008, reason: "refused by the test" }));
  let polled = 0;
  fallback.on("request", (request) => {
    if (request.method() === "GET" && new URL(request.url()).pathname === "/procedures") polled++;
  });
  try {
    await fallback.goto(`${base}/`);
    await fallback.locator('tr[data-name="math"]').waitFor();
    await admin("PUT", "polled", readFileSync(upload));
    await fallback.locator('tr[data-name="polled"]').waitFor();
    await admin("DELETE", "polled");
    await fallback.locator('tr[data-name="polled"]').waitFor({ state: "detached" });
    assert.ok(polled >= 2, `GET /procedures ${polled} times`);
  } finally {
    await fallback.close();
  }
});

check('"try it" on math.add with 2 and 3 shows 5, and the same call with curl', async () => {
  await page.goto(`${base}/#/p/math`);
  await method("math.add").waitFor();
  await page.screenshot({ path: path.join(shots, "procedure.png") });
  // By keyboard alone: open "try it", type into the two fields, Enter sends.
  const section = method("math.add");
  await section.locator("summary").focus();
  await page.keyboard.press("Enter");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.name), "a");
  await page.keyboard.type("2");
  await page.keyboard.press("Tab");
  await page.keyboard.type("3");
  await page.keyboard.press("Enter");
  await section.locator(".answer").waitFor();
  assert.match(await section.locator(".answer-head").first().innerText(), /^Result HTTP 200/);
  const answer = { json: JSON.parse(await section.locator(".answer-json").innerText()) };
  assert.deepEqual(answer.json, { jsonrpc: "2.0", result: 5, id: answer.json.id });
  const curl = await section.locator("code.curl").innerText();
  assert.match(curl, /^curl -s http:\/\/127\.0\.0\.1:\d+\/rpc /);
  assert.ok(curl.includes(`"params":{"a":2,"b":3}`), curl);
  // The command is what it says: a shell runs it and gets the same answer.
  const out = execFileSync("sh", ["-c", curl], { encoding: "utf8", timeout: 10_000 });
  assert.equal(JSON.parse(out).result, 5, out);
  await section.screenshot({ path: path.join(shots, "try-it.png") });
});

check("a wrong type through the raw-JSON box shows the -32602 error", async () => {
  const section = await openTryIt("math", "math.add");
  await section.getByLabel("Edit params as JSON").check();
  await section.locator("textarea.raw").fill('{"a": "two", "b": 3}');
  const answer = await send(section);
  assert.equal(answer.kind, "error");
  assert.equal(answer.code, "-32602");
  assert.match(answer.head, /Error -32602 \(invalid params\): invalid parameter `a`/);
  assert.equal(answer.json.error.data.parameter, "a");
  // Not JSON at all is refused in the page, with the reason, and not sent.
  await section.locator("textarea.raw").fill("{a: 1");
  await section.getByRole("button", { name: "Send" }).click();
  await section.locator(".msg.error", { hasText: "the params are not valid JSON" }).waitFor();
});

check("a nested form: json.invoice with an item and the coupon", async () => {
  const section = await openTryIt("json", "json.invoice");
  await section.locator('input[name="order.customer.name"]').fill("Ada");
  await section.locator('input[name="order.items[].sku"]').fill("A-1");
  await section.locator('input[name="order.items[].quantity"]').fill("2");
  await section.locator('input[name="order.items[].unit_price"]').fill("10");
  await section.locator('select[name="order.coupon"]').selectOption({ label: "TENOFF — Takes 10% off." });
  const answer = await send(section);
  assert.equal(answer.kind, "ok", answer.head);
  assert.equal(answer.json.result.total, 18);
  // A required field left empty is named, and nothing is sent.
  await section.locator('input[name="order.items[].quantity"]').fill("");
  await section.getByRole("button", { name: "Send" }).click();
  await section.locator(".msg.error", { hasText: "`order.items[0].quantity` is required" }).waitFor();
});

check("HTML from a module is shown as text and never runs", async () => {
  const section = await openTryIt("markup", "markup.echo");
  const doc = await section.locator("p.doc").innerText();
  assert.ok(doc.includes(`<script>alert("doc")</script><img src=x onerror="window.pwned=1">`), doc);
  const all = await page.locator("main").innerText();
  for (const shown of [
    `<b onmouseover="window.pwned=2">bold</b>`,
    `<img src=x onerror="window.pwned=3">`,
    `<svg onload="window.pwned=4">`,
    `<style>body{display:none}</style>`,
  ]) {
    assert.ok(all.includes(shown), `${shown} is not shown as text`);
  }
  const options = await section.locator("select option").allInnerTexts();
  assert.ok(options.includes("</option><script>alert('option')</script>"), options.join(" | "));
  // Nothing of it became an element.
  const injected = await page.evaluate(
    () => document.querySelectorAll("main script, main img, main svg, main iframe, main style, main b, main i, main a[href^=javascript]").length,
  );
  assert.equal(injected, 0, "an element from the module's text");
  // The enum's odd values still go back to the server as they are.
  await section.locator("fieldset input[type=text]").fill("hi");
  await section.locator("select").last().selectOption({ label: "</option><script>alert('option')</script>" });
  const answer = await send(section);
  assert.equal(answer.json.result, "hi (loud)", answer.head);
  // HTML in a result and in an error message is shown as text too.
  const html = `<img src=x onerror="window.pwned=5">`;
  await section.locator("fieldset input[type=text]").fill(html);
  const htmlResult = await send(section);
  assert.equal(htmlResult.json.result, `${html} (loud)`, htmlResult.head);
  // As JSON text: the quotes in it are escaped, the tag's characters are all there.
  const shownResult = await section.locator(".answer").innerText();
  assert.ok(shownResult.includes(`<img src=x onerror=`), `the result's HTML is not shown as text: ${shownResult}`);
  const add = await openTryIt("math", "math.add");
  await add.getByLabel("Edit params as JSON").check();
  await add.locator("textarea.raw").fill(JSON.stringify({ a: `<svg onload="window.pwned=6">`, b: 1 }));
  const htmlError = await send(add);
  assert.equal(htmlError.code, "-32602", htmlError.head);
  assert.ok(htmlError.head.includes("<svg onload=") && htmlError.head.includes("window.pwned=6"), htmlError.head);
  const injectedByAnswers = await page.evaluate(() => document.querySelectorAll("main img, main svg").length);
  assert.equal(injectedByAnswers, 0, "an element from an answer's text");
  await page.locator("main").hover();
  assert.equal(await page.evaluate(() => window.pwned), undefined, "window.pwned was set");
  assert.deepEqual(dialogs, [], "a dialog opened");
  await page.screenshot({ path: path.join(shots, "escaping.png"), fullPage: true });
});

check("deploy from the page needs the admin token: a wrong one shows the 401", async () => {
  await page.goto(`${base}/`);
  await page.locator("#token").fill("not-the-token");
  await page.locator("#deploy-file").setInputFiles(upload);
  assert.equal(await page.locator("#deploy-name").inputValue(), path.basename(upload, ".wasm"));
  await page.locator("#deploy-name").fill("words");
  expectedError = /status of 401/;
  await page.getByRole("button", { name: "Deploy" }).click();
  await page.locator(".deploy .msg.error", { hasText: "401: wrong admin token" }).waitFor();
  expectedError = null;
  await page.locator("#token").fill(token);
  await page.getByRole("button", { name: "Deploy" }).click();
  await page.locator(".deploy .msg.ok", { hasText: "Deployed words version 1" }).waitFor({ timeout: 60_000 });
  await page.locator('tr[data-name="words"]').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("wasmrpc.adminToken")), token);
  assert.equal(await page.evaluate(() => localStorage.length), 0, "the token must not outlive the tab");
  assert.equal((await rpc("words.upper", ["abc"])).result, "ABC");
  expectedError = null;
});

check("rollback from the page makes the old version answer", async () => {
  assert.equal((await rpc("flip.version", [])).result, 2);
  await page.goto(`${base}/#/p/flip`);
  await page.locator('table.versions tr.serving[data-version="2"]').waitFor();
  await page.getByRole("button", { name: "Roll back to v1" }).click();
  await confirm(/Roll back flip to version 1/);
  await page.locator(".msg.ok", { hasText: "Version 1 of flip is serving" }).waitFor();
  await page.locator('table.versions tr.serving[data-version="1"]').waitFor();
  assert.equal((await rpc("flip.version", [])).result, 1);
  await page.screenshot({ path: path.join(shots, "rollback.png") });
  // And forward again, by the other version's button.
  await page.getByRole("button", { name: "Activate v2" }).click();
  await confirm(/flip to version 2/);
  await page.locator('table.versions tr.serving[data-version="2"]').waitFor();
  assert.equal((await rpc("flip.version", [])).result, 2);
});

check("remove from the page, after confirming, and bring it back", async () => {
  await page.goto(`${base}/#/p/words`);
  // From here the page asks for a procedure that is gone: the browser logs each 404.
  expectedError = /status of 404/;
  await page.getByRole("button", { name: "Remove words…" }).click();
  await confirm(/Remove words\?/);
  await page.locator(".msg.ok", { hasText: "Removed words." }).waitFor();
  await page.locator('tr[data-name="math"]').waitFor();
  assert.equal(await page.locator('tr[data-name="words"]').count(), 0);
  assert.equal((await rpc("words.upper", ["abc"])).error.code, -32601);
  // Its versions are kept: its page brings it back.
  await page.goto(`${base}/#/p/words`);
  await page.locator(".meta .msg.error", { hasText: "words is not deployed (any more)" }).waitFor();
  await page.getByRole("button", { name: "Activate v1" }).click();
  await confirm(/Bring back words to version 1/);
  await page.locator('table.versions tr.serving[data-version="1"]').waitFor();
  await method("words.upper").waitFor();
  assert.equal((await rpc("words.upper", ["abc"])).result, "ABC");
  expectedError = null;
});

check("no console errors, page errors or dialogs", async () => {
  assert.deepEqual(consoleErrors, []);
  assert.deepEqual(dialogs, []);
});

let passed = 0;
let failed = 0;
try {
  for (const { name, run } of checks) {
    try {
      await run();
      passed++;
      console.log(`ok - ${name}`);
    } catch (err) {
      failed++;
      console.log(`FAIL - ${name}\n${err.stack ?? err}`);
      await page.screenshot({ path: path.join(shots, `failed-${passed + failed}.png`), fullPage: true }).catch(() => {});
    }
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
