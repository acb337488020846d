// `jsstrings`: a procedure written in JavaScript, built into a component with
// ComponentizeJS (`make procedures-js`). It implements wit/procedure.wit
// without an SDK: `describe` returns OpenRPC Method Objects, `call`
// dispatches on the method name and returns JSON text, or throws an
// rpc-error record.

const STRING = { type: "string" };

const methods = {
  capitalize: {
    summary: "Capitalizes the first letter of every word.",
    run: (text) => text.replace(/\b[a-z]/g, (c) => c.toUpperCase()),
  },
  vowels: {
    summary: "Counts the vowels (a, e, i, o, u) in the text.",
    result: { type: "integer" },
    run: (text) => (text.match(/[aeiou]/gi) || []).length,
  },
  camel: {
    summary: "Turns words into camelCase.",
    run: (text) =>
      text
        .toLowerCase()
        .split(/[^a-z0-9]+/)
        .filter(Boolean)
        .map((w, i) => (i === 0 ? w : w[0].toUpperCase() + w.slice(1)))
        .join(""),
  },
};

function rpcError(code, message, data) {
  return { code, message, data: data === undefined ? undefined : JSON.stringify(data) };
}

export const stub = {
  describe() {
    return JSON.stringify({
      methods: Object.entries(methods).map(([name, m]) => ({
        name,
        summary: m.summary,
        params: [{ name: "text", required: true, schema: STRING }],
        result: { name: "result", schema: m.result || STRING },
      })),
    });
  },

  call(method, params) {
    const m = methods[method];
    if (!m) throw rpcError(-32601, "Method not found");
    const args = JSON.parse(params);
    const text = Array.isArray(args) ? args[0] : args && args.text;
    if (typeof text !== "string") {
      throw rpcError(-32602, "invalid parameter `text`: expected a string", { parameter: "text" });
    }
    return JSON.stringify(m.run(text));
  },
};
