// Runs @open-rpc/test-coverage against the document a wasmrpc server serves
// at rpc.discover: it calls every method with params generated from its
// JSON Schemas (and any examples) and checks each result against the result
// schema. Exits 1 when any call fails. Run by the end-to-end tests:
// `NODE_PATH=<npm dir>/node_modules node openrpc-coverage.cjs http://127.0.0.1:PORT`.
// The params come from json-schema-faker with a seeded generator, so a
// failure recurs on a rerun: OPENRPC_SEED=N picks another seed (printed).

const coverage = require("@open-rpc/test-coverage").default;
const { parseOpenRPCDocument } = require("@open-rpc/schema-utils-js");
// The same module instance test-coverage's faker rule requires.
const jsf = require("json-schema-faker");

// mulberry32: a small, well-known 32-bit generator; Math.random has no seed.
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const seed = Number(process.env.OPENRPC_SEED ?? 20261130);
jsf.option({ random: seeded(seed) });

async function main() {
  const url = `${process.argv[2]}/rpc`;
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", method: "rpc.discover", id: 1 }),
  });
  const document = (await response.json()).result;
  // test-coverage 2.2 bundles a meta-schema that stops at OpenRPC 1.2.6;
  // nothing in our documents needs 1.3.
  document.openrpc = "1.2.6";
  document.servers = [{ name: "wasmrpc under test", url }];
  const parsed = await parseOpenRPCDocument(JSON.stringify(document));
  // The console reporter exits the process itself; report here instead.
  const calls = await coverage({ openrpcDocument: parsed, transport: "http", reporters: ["empty"] });
  const failed = calls.filter((call) => !call.valid);
  for (const call of failed) {
    console.log(`FAILED ${call.methodName}(${JSON.stringify(call.params)}): ${call.reason} -> ${JSON.stringify(call.result ?? call.error)}`);
  }
  const methods = new Set(calls.map((call) => call.methodName));
  console.log(`${calls.length} calls of ${methods.size} of ${document.methods.length} methods, ${failed.length} failed (OPENRPC_SEED=${seed})`);
  if (failed.length > 0 || methods.size !== document.methods.length) process.exit(1);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
