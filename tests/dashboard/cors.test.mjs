// Cross-origin calls in a real browser (headless Chromium driven by
// playwright-core). Run by the end-to-end test
// `public::cross_origin_calls_in_a_browser` (tests/e2e/public.rs), which
// starts two servers with math deployed and passes:
//
//   PAGE_ORIGIN  the origin of the page: a loopback server of the test's
//                own, answering every request with one small HTML page
//   OPEN_URL     a server started with --cors-origin PAGE_ORIGIN
//   CLOSED_URL   a server started without it
//   KEYED_URL    a server started with it and --require-call-key
//   KEY          a caller key of KEYED_URL's that covers math
//
// Prints "ok"/"FAIL" per check and "N passed, N failed"; exit status 1 when
// any failed.

import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";

const { chromium } = createRequire(import.meta.url)("playwright-core");

const OVERALL_TIMEOUT_MS = 90_000;
const { PAGE_ORIGIN: origin, OPEN_URL: open, CLOSED_URL: closed, KEYED_URL: keyed, KEY: key } = process.env;
if (!origin || !open || !closed || !keyed || !key) {
  console.error("set PAGE_ORIGIN, OPEN_URL, CLOSED_URL, KEYED_URL and KEY");
  process.exit(2);
}
setTimeout(() => {
  console.error(`FAIL: the browser test still ran after ${OVERALL_TIMEOUT_MS} ms`);
  process.exit(1);
}, OVERALL_TIMEOUT_MS).unref();

const profile = mkdtempSync(path.join(tmpdir(), "wasmrpc-cors-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});
context.setDefaultTimeout(15_000);
const page = context.pages()[0] ?? (await context.newPage());
await page.goto(`${origin}/`);

let passed = 0;
let failed = 0;
async function check(name, body) {
  try {
    await body();
    passed += 1;
    console.log(`ok ${name}`);
  } catch (err) {
    failed += 1;
    console.log(`FAIL ${name}: ${err.stack ?? err}`);
  }
}

// A call as a page makes it: JSON and a traceparent header need a
// preflight, so an answer read here means the preflight passed too.
const call = (base) =>
  page.evaluate(async (base) => {
    try {
      const answer = await fetch(`${base}/rpc`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        },
        body: JSON.stringify({ jsonrpc: "2.0", method: "math.add", params: [2, 3], id: 1 }),
      });
      return { status: answer.status, body: await answer.json() };
    } catch (err) {
      return { failed: String(err) };
    }
  }, base);

await check("an allowed origin's page calls and reads the answer", async () => {
  const answer = await call(open);
  assert.equal(answer.status, 200, JSON.stringify(answer));
  assert.deepEqual(answer.body, { jsonrpc: "2.0", result: 5, id: 1 });
});

await check("a page of an origin the server does not list cannot call", async () => {
  const answer = await call(closed);
  assert.ok(answer.failed, `the fetch should have failed: ${JSON.stringify(answer)}`);
});

await check("a simple request (no preflight) is refused too, not only unreadable", async () => {
  const status = await page.evaluate(async (base) => {
    try {
      await fetch(`${base}/rpc`, {
        method: "POST",
        mode: "no-cors",
        headers: { "content-type": "text/plain" },
        body: JSON.stringify({ jsonrpc: "2.0", method: "math.add", params: [1, 1], id: 2 }),
      });
      return "sent";
    } catch (err) {
      return String(err);
    }
  }, closed);
  // An opaque answer: the page cannot read it, and the server refused it
  // with 403 before running anything (the Rust test checks the counters).
  assert.equal(status, "sent");
});

// A WebSocket: browsers open it to any origin without a preflight, so the
// server checks the page's origin at the upgrade.
const socketCall = (base, protocols) =>
  page.evaluate(
    ([url, protocols]) =>
      new Promise((resolve) => {
        const socket = new WebSocket(url, protocols);
        socket.onopen = () => socket.send(JSON.stringify({ jsonrpc: "2.0", method: "math.add", params: [4, 5], id: 7 }));
        socket.onmessage = (event) => {
          resolve(JSON.parse(event.data));
          socket.close();
        };
        socket.onerror = () => resolve({ failed: "the socket did not open" });
      }),
    [`${base.replace("http://", "ws://")}/rpc`, protocols],
  );

await check("an allowed origin's page calls over a WebSocket", async () => {
  assert.deepEqual(await socketCall(open), { jsonrpc: "2.0", result: 9, id: 7 });
});

await check("a page of another origin cannot open a WebSocket to a server that does not list it", async () => {
  const answer = await socketCall(closed);
  assert.ok(answer.failed, JSON.stringify(answer));
});

// A caller key: fetch sends it as a header (allowed by the preflight), a
// WebSocket as a subprotocol beside `wasmrpc`, which the server agrees on.
await check("a page calls with a caller key in the Authorization header", async () => {
  const answer = await page.evaluate(
    async ([base, key]) => {
      const answer = await fetch(`${base}/rpc`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
        body: JSON.stringify({ jsonrpc: "2.0", method: "math.add", params: [20, 22], id: 3 }),
      });
      return { status: answer.status, body: await answer.json() };
    },
    [keyed, key],
  );
  assert.deepEqual(answer, { status: 200, body: { jsonrpc: "2.0", result: 42, id: 3 } });
});

await check("a page's WebSocket offers its caller key as a subprotocol", async () => {
  assert.deepEqual(await socketCall(keyed, ["wasmrpc", `wasmrpc.bearer.${key}`]), { jsonrpc: "2.0", result: 9, id: 7 });
});

await check("without the key the server refuses the WebSocket", async () => {
  const answer = await socketCall(keyed, ["wasmrpc"]);
  assert.ok(answer.failed, JSON.stringify(answer));
});

await context.close();
rmSync(profile, { recursive: true, force: true });
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
