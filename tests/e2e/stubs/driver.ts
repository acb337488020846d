// Calls every example method through the generated TypeScript stub (stub.ts
// beside it). Usage: node driver.js URL calls|removed|stopped, URL http:// or
// ws:// (then also concurrent calls on the one connection, and a call after
// the server closed it for idleness). tsc --strict checks this file against
// the stub, so a wrongly typed stub fails here before it runs.

import { Client, RpcError, TransportError, type Order } from "./stub.js";

declare const process: { argv: string[] };

function assert(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${what}`);
}

function same(actual: unknown, expected: unknown, what: string): void {
  assert(JSON.stringify(actual) === JSON.stringify(expected), `${what}: ${JSON.stringify(actual)}`);
}

async function failure(promise: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error(`${what} should fail`);
}

async function rpcError(promise: Promise<unknown>, what: string): Promise<RpcError> {
  const error = await failure(promise, what);
  assert(error instanceof RpcError, `${what}: ${String(error)}`);
  return error;
}

async function calls(client: Client): Promise<void> {
  same(await client.math.add(2, 3), 5, "math.add");
  same(await client.math.subtract(5, 3), 2, "math.subtract");
  same(await client.math.multiply(6, 7), 42, "math.multiply");
  same(await client.math.divide(1, 4), 0.25, "math.divide");
  const error = await rpcError(client.math.divide(1, 0), "math.divide by zero");
  same([error.code, error.message, error.data], [1, "division by zero", { a: 1 }], "math.divide error");
  same(await client.math.round(3.14159), 3, "math.round without digits");
  same(await client.math.round(3.14159, 2), 3.14, "math.round");
  const stats = await client.math.stats([1, 2, 3]);
  same([stats.count, stats.sum, stats.mean], [3, 6, 2], "math.stats");
  same((await client.math.stats([])).mean, null, "math.stats of nothing");

  same(await client.text.word_count("one two  three"), 3, "text.word_count");
  same(await client.text.slugify("Hello, World!"), "hello-world", "text.slugify");
  same(await client.text.slugify("Hello, World!", "_"), "hello_world", "text.slugify with separator");
  same(await client.text.reverse("abc"), "cba", "text.reverse");
  same(await client.text.upper("abc"), "ABC", "text.upper");
  same(await client.text.is_palindrome("A man, a plan, a canal: Panama"), true, "text.is_palindrome");

  const order: Order = {
    customer: { name: "Ada", email: "ada@example.com" },
    items: [{ sku: "A-1", quantity: 2, unit_price: 9.5 }],
    coupon: "TENOFF",
  };
  const invoice = await client.json.invoice(order);
  same([invoice.subtotal, invoice.discount, invoice.total], [19, 1.9, 17.1], "json.invoice");
  same(invoice.customer, { name: "Ada", email: "ada@example.com" }, "json.invoice customer");
  same(invoice.lines.map((l) => [l.sku, l.quantity, l.total]), [["A-1", 2, 19]], "json.invoice lines");
  const plain = await client.json.invoice({ customer: { name: "Bo" }, items: [{ sku: "B", quantity: 1, unit_price: 2.5 }] });
  same([plain.discount, plain.total], [undefined, 2.5], "json.invoice without coupon");
  same((await rpcError(client.json.invoice({ customer: { name: "Cy" }, items: [] }), "empty order")).code, 2, "empty order");
  const census = await client.json.census({ a: [1, "x", null, true], b: {} });
  same([census.objects, census.arrays, census.numbers, census.strings, census.nulls, census.booleans], [2, 1, 1, 1, 1, 1], "json.census");

  same(await client.subtract.subtract(42, 23), 19, "subtract");
  same(await client.sum.sum(), 0, "sum of nothing");
  same(await client.sum.sum(1, 2), 3, "sum");
  same(await client.get_data.get_data(), ["hello", 5], "get_data");
  same(await client.update.update(1, 2, 3, 4, 5), null, "update");
  same(await client.notify_hello.notify_hello(7), null, "notify_hello");
  same(await client.notify_sum.notify_sum(1, 2, 3), null, "notify_sum");

  const batch = client.batch();
  const total = batch.math.add(2, 3);
  const quotient = batch.math.divide(1, 0);
  const shout = batch.text.upper("x");
  await batch.send();
  same(await total, 5, "batch math.add");
  same(await shout, "X", "batch text.upper");
  same((await rpcError(quotient, "batch math.divide by zero")).code, 1, "batch math.divide");
}

async function websocket(client: Client): Promise<void> {
  // Concurrent calls on one connection, answered in any order, one failing.
  const sums = Array.from({ length: 20 }, (_, i) => client.math.add(i, 1000));
  const quotient = rpcError(client.math.divide(1, 0), "concurrent math.divide by zero");
  const shouts = Promise.all(["a", "b", "c"].map((s) => client.text.upper(s)));
  same(await Promise.all(sums), Array.from({ length: 20 }, (_, i) => i + 1000), "concurrent math.add");
  same((await quotient).code, 1, "concurrent math.divide");
  same(await shouts, ["A", "B", "C"], "concurrent text.upper");
  // The server closes an idle connection (after 1 s here): the next call
  // connects anew.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  same(await client.math.add(1, 1), 2, "math.add after the server closed the idle connection");
}

async function removed(client: Client): Promise<void> {
  const error = await rpcError(client.text.upper("x"), "text.upper after text was removed");
  same([error.code, error.message], [-32601, "Method not found"], "removed");
}

async function stopped(client: Client): Promise<void> {
  const error = await failure(client.math.add(1, 2), "a call to a stopped server");
  assert(error instanceof TransportError, `stopped: ${String(error)}`);
  assert(error.message.includes("cannot reach the server"), error.message);
}

const [url, phase] = process.argv.slice(2);
const client = new Client(url, { timeoutMs: 10000 });
const phases: Record<string, (client: Client) => Promise<void>> = { calls, removed, stopped };
try {
  await phases[phase](client);
  if (phase === "calls" && url.startsWith("ws://")) await websocket(client);
} finally {
  client.close();
}
console.log("ok");
