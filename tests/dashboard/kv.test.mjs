// A procedure's key-value data in the dashboard, in a real browser (headless
// Chromium driven by playwright-core, as dashboard.test.mjs). Run by the
// end-to-end test `dashboard::key_value_data_in_a_browser` (tests/e2e/dashboard.rs),
// which starts a server with `--admin-token`, deploys math, and writes through
// the admin API, for math:
//
//   bucket `<script>alert("bucket")</script>`: key `<img src=x onerror="window.pwned=1">`
//     with the value `<b onmouseover="window.pwned=2">bold</b> café`
//   bucket `default`: key `blob`, 300 bytes that are not UTF-8
//   bucket `many`: keys `key 00` to `key 59`, values `value 0` to `value 59`
//
// and passes DASHBOARD_URL, DASHBOARD_TOKEN and DASHBOARD_SCREENSHOTS. Prints
// "ok"/"FAIL" per check and "N passed, N failed"; exit status 1 when any failed.

import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const { chromium } = createRequire(import.meta.url)("playwright-core");

const OVERALL_TIMEOUT_MS = 90_000;
const STEP_TIMEOUT_MS = 15_000;

const base = process.env.DASHBOARD_URL;
const token = process.env.DASHBOARD_TOKEN;
const shots = process.env.DASHBOARD_SCREENSHOTS;
if (!base || !token || !shots) {
  console.error("set DASHBOARD_URL, DASHBOARD_TOKEN and DASHBOARD_SCREENSHOTS");
  process.exit(2);
}
setTimeout(() => {
  console.error(`FAIL: the browser test still ran after ${OVERALL_TIMEOUT_MS} ms`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS).unref();
mkdirSync(shots, { recursive: true });

const SCRIPT_BUCKET = `<script>alert("bucket")</script>`;
const IMG_KEY = `<img src=x onerror="window.pwned=1">`;
const BOLD_VALUE = `<b onmouseover="window.pwned=2">bold</b> café`;

const profile = mkdtempSync(path.join(tmpdir(), "wasmrpc-dashboard-kv-"));
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

const consoleErrors = [];
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

const kv = page.locator("div.kv");
const bucketRow = (bucket) => kv.locator("table.kv-buckets tbody tr").filter({ has: page.locator("td:first-child", { hasText: bucket }) });
const entries = kv.locator("table.kv-entries tbody tr");

const checks = [];
const check = (name, run) => checks.push({ name, run });

check("without the admin token the data is refused with the hint; with it, the buckets show", async () => {
  await page.goto(`${base}/#/p/math`);
  // Nothing is read until asked: a page opened without the token makes no admin request.
  await page.locator("section.method").first().waitFor();
  assert.equal(await kv.locator("table, .msg").count(), 0);
  expectedError = /status of 401/;
  await kv.getByRole("button", { name: "Show key-value data" }).click();
  await kv.locator(".msg.error", { hasText: "401: missing admin token" }).waitFor();
  assert.match(await kv.locator(".msg.error").innerText(), /Enter the server's admin token at the top of the page/);
  await page.locator("#token").fill(token);
  await kv.getByRole("button", { name: "Reload" }).click();
  await kv.locator("table.kv-buckets").waitFor();
  expectedError = null;
  const rows = await kv.locator("table.kv-buckets tbody tr").evaluateAll((trs) =>
    trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent)),
  );
  const byBucket = Object.fromEntries(rows.map(([bucket, keys]) => [bucket, Number(keys)]));
  assert.deepEqual(byBucket, { [SCRIPT_BUCKET]: 1, default: 1, many: 60 }, JSON.stringify(rows));
  assert.match(await bucketRow("many").locator("td").nth(2).innerText(), /B$/);
});

check("a bucket and a key with markup are shown as text, and their value too", async () => {
  await bucketRow("alert").getByRole("button").click();
  await entries.first().waitFor();
  assert.equal(await kv.locator(".kv-keys h3").innerText(), `Bucket ${SCRIPT_BUCKET}`);
  assert.equal(await entries.count(), 1);
  assert.equal(await entries.first().locator("td").nth(0).innerText(), IMG_KEY);
  assert.equal(await entries.first().locator("td.kv-value").getAttribute("data-kind"), "text");
  assert.equal(await entries.first().locator("td.kv-value pre").innerText(), BOLD_VALUE);
  assert.equal(await kv.locator(".kv-keys p.muted").innerText(), "1 key.");
  // Nothing of it became an element, nothing ran.
  const injected = await page.evaluate(() => document.querySelectorAll("main script, main img, main b, main svg").length);
  assert.equal(injected, 0, "an element from the key-value data");
  await entries.first().hover();
  assert.equal(await page.evaluate(() => window.pwned), undefined, "window.pwned was set");
  assert.deepEqual(dialogs, [], "a dialog opened");
  await page.screenshot({ path: path.join(shots, "kv-escaping.png"), fullPage: true });
});

check("a value that is not UTF-8 is shown as hex, with a note", async () => {
  await bucketRow("default").getByRole("button").click();
  await kv.locator('.kv-keys h3', { hasText: "Bucket default" }).waitFor();
  await entries.first().waitFor();
  const cell = entries.first().locator("td.kv-value");
  assert.equal(await cell.getAttribute("data-kind"), "hex");
  assert.match(await cell.locator("pre").innerText(), /^ff fe 00 01 /);
  assert.equal(await cell.locator(".hint").innerText(), "300 B, not UTF-8 text: shown as hex; the first 256 bytes.");
  assert.equal(await entries.first().locator("td").nth(1).innerText(), "300 B");
});

check('"More keys" follows the cursor to the end of a bucket', async () => {
  await bucketRow("many").getByRole("button").click();
  await kv.locator('.kv-keys h3', { hasText: "Bucket many" }).waitFor();
  await kv.locator(".kv-keys p.muted", { hasText: "The first 50 keys." }).waitFor();
  assert.equal(await entries.count(), 50);
  const more = kv.getByRole("button", { name: "More keys" });
  await more.click();
  await kv.locator(".kv-keys p.muted", { hasText: "All 60 keys." }).waitFor();
  assert.equal(await more.isHidden(), true);
  const keys = await entries.evaluateAll((trs) => trs.map((tr) => tr.querySelector("td").textContent));
  assert.deepEqual(keys, Array.from({ length: 60 }, (_, i) => `key ${String(i).padStart(2, "0")}`));
  assert.equal(await entries.last().locator("td.kv-value pre").innerText(), "value 59");
  await page.screenshot({ path: path.join(shots, "kv.png"), fullPage: true });
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
      await page.screenshot({ path: path.join(shots, `failed-kv-${passed + failed}.png`), fullPage: true }).catch(() => {});
    }
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
