// A JavaScript client of wasmrpc with Node's built-in fetch: single calls,
// params by name, a batch, a notification and an error. Run by the
// end-to-end tests: `node client.mjs http://127.0.0.1:PORT`.

import assert from "node:assert/strict";

const url = `${process.argv[2]}/rpc`;
let nextId = 1;

async function post(body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === "" ? null : JSON.parse(text) };
}

async function call(method, params) {
  const { body } = await post({ jsonrpc: "2.0", method, params, id: nextId++ });
  return body;
}

assert.equal((await call("math.add", [2, 3])).result, 5);
assert.equal((await call("math.add", { a: 40, b: 2 })).result, 42);
assert.equal((await call("text.word_count", { text: "one two three" })).result, 3);

const batch = await post([
  { jsonrpc: "2.0", method: "math.multiply", params: [6, 7], id: "x" },
  { jsonrpc: "2.0", method: "text.upper", params: ["js"], id: "y" },
  { jsonrpc: "2.0", method: "math.add", params: [1, 1] },
]);
assert.equal(batch.status, 200);
const byId = Object.fromEntries(batch.body.map((r) => [r.id, r]));
assert.equal(batch.body.length, 2);
assert.equal(byId.x.result, 42);
assert.equal(byId.y.result, "JS");

const note = await post({ jsonrpc: "2.0", method: "math.add", params: [1, 2] });
assert.equal(note.status, 204);
assert.equal(note.body, null);

const divide = await call("math.divide", [1, 0]);
assert.deepEqual(divide.error, { code: 1, message: "division by zero", data: { a: 1 } });
const wrong = await call("math.add", [1, "two"]);
assert.equal(wrong.error.code, -32602);
assert.match(wrong.error.message, /`b`/);

console.log("node client: ok");
