// The server's JSON API, as the page uses it: the admin routes (with the
// admin token of this tab, if any), JSON-RPC calls, and /metrics parsed into
// per-procedure figures.

const TOKEN_KEY = "wasmrpc.adminToken";

/** The admin token: in sessionStorage only, so it is gone with the tab. */
export const adminToken = {
  get: () => sessionStorage.getItem(TOKEN_KEY) ?? "",
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};

/** A request the server refused (`status` and its `{"error"}` text), or got no answer (`status` 0). */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
  /** "401 Unauthorized: wrong admin token", with a hint where one helps. */
  describe() {
    if (this.status === 0) return this.message;
    const hint = this.status === 401 ? " Enter the server's admin token at the top of the page." : "";
    return `${this.status}: ${this.message.replace(/\.$/, "")}.${hint}`;
  }
}

async function request(method, path, { body, admin = false, accept = "json" } = {}) {
  const headers = {};
  const token = adminToken.get();
  if (admin && token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message})`);
  }
  const text = await response.text();
  if (!response.ok) {
    let message = text || response.statusText;
    try {
      message = JSON.parse(text).error ?? message;
    } catch {
      // Not JSON: the text as it is.
    }
    throw new ApiError(response.status, message);
  }
  if (accept === "text") return text;
  return text ? JSON.parse(text) : null;
}

const at = (name) => `/procedures/${encodeURIComponent(name)}`;

export const api = {
  list: () => request("GET", "/procedures"),
  get: (name) => request("GET", at(name)),
  versions: (name) => request("GET", `${at(name)}/versions`),
  activate: (name, version) => request("POST", `${at(name)}/versions/${version}/activate`, { admin: true }),
  deploy: (name, file) => request("PUT", at(name), { body: file, admin: true }),
  remove: (name) => request("DELETE", at(name), { admin: true }),
  /** `{procedure, buckets: [{bucket, keys, bytes}]}` of the procedure's key-value data. */
  kvBuckets: (name) => request("GET", `${at(name)}/kv`, { admin: true }),
  /**
   * A page of a bucket's keys with their values in base64: `{bucket, entries: [{key, value}], cursor}`.
   * `limit` keys at most (null: the server's page); a cursor from the previous page, or null.
   */
  kvPage: (name, bucket, cursor, limit) => {
    const query = new URLSearchParams({ bucket, values: "1" });
    if (limit !== null) query.set("limit", String(limit));
    if (cursor !== null) query.set("cursor", cursor);
    return request("GET", `${at(name)}/kv?${query}`, { admin: true });
  },
  metrics: async () => parseMetrics(await request("GET", "/metrics", { accept: "text" })),
  /** The OpenRPC document's methods. */
  discover: async () => {
    const answer = await call(JSON.stringify({ jsonrpc: "2.0", method: "rpc.discover", id: 0 }));
    const methods = answer.json?.result?.methods;
    if (!Array.isArray(methods)) throw new ApiError(answer.status, `rpc.discover did not answer an OpenRPC document: ${answer.text.slice(0, 200)}`);
    return methods;
  },
};

/**
 * POSTs a JSON-RPC request body (text); answers the HTTP status, the body's text and its JSON.
 * The tab's admin token goes along if there is one: the server takes it as a key to every
 * procedure, so "try it" works on a server started with --require-call-key.
 */
export async function call(body) {
  const headers = { "content-type": "application/json" };
  const token = adminToken.get();
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch("/rpc", { method: "POST", headers, body });
  } catch (err) {
    throw new ApiError(0, `the server did not answer (${err.message})`);
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    // Shown as text.
  }
  return { status: response.status, text, json };
}

/**
 * Per procedure, from the Prometheus text of /metrics: `calls`, `errors`
 * (a Map of JSON-RPC code to count) and the cumulative latency `buckets`
 * ([upper bound in seconds, count], ascending, the last +Inf).
 */
export function parseMetrics(text) {
  const procedures = new Map();
  const of = (name) => {
    if (!procedures.has(name)) procedures.set(name, { calls: 0, errors: new Map(), buckets: [] });
    return procedures.get(name);
  };
  for (const line of text.split("\n")) {
    const sample = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!sample) continue;
    const [, metric, labelText, valueText] = sample;
    const labels = Object.fromEntries([...labelText.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    const value = Number(valueText);
    if (labels.procedure === undefined) continue;
    if (metric === "wasmrpc_calls_total") of(labels.procedure).calls = value;
    else if (metric === "wasmrpc_errors_total") of(labels.procedure).errors.set(Number(labels.code), value);
    else if (metric === "wasmrpc_call_duration_seconds_bucket") {
      of(labels.procedure).buckets.push([labels.le === "+Inf" ? Infinity : Number(labels.le), value]);
    }
  }
  for (const stats of procedures.values()) stats.buckets.sort((a, b) => a[0] - b[0]);
  return procedures;
}

/**
 * The q-quantile (0.5, 0.99) of a cumulative histogram, interpolated
 * linearly inside its bucket as Prometheus's histogram_quantile does:
 * `{ seconds, above }`, `above` when it lies past the largest finite bound
 * (then `seconds` is that bound); null without calls.
 */
export function quantile(q, buckets) {
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (!total) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (bound === Infinity) return { seconds: lower, above: true };
      const share = count === below ? 1 : (rank - below) / (count - below);
      return { seconds: lower + (bound - lower) * share, above: false };
    }
    lower = bound;
    below = count;
  }
  return null;
}

/** What a JSON-RPC error code means, for the codes the server itself answers. */
export const ERROR_CODES = new Map([
  [-32700, "parse error"],
  [-32600, "invalid request"],
  [-32601, "method not found"],
  [-32602, "invalid params"],
  [-32603, "internal error"],
  [-32000, "the procedure trapped"],
  [-32001, "time limit"],
  [-32002, "memory limit"],
  [-32003, "server overloaded"],
  [-32004, "nested-call limit"],
]);
