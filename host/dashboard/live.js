// The procedure list, kept current by the server: a WebSocket to /rpc
// subscribed to `wasmrpc.procedures` (deploys, rollbacks and removals), the
// list loaded once (GET /procedures) and changed by each notification. While
// the socket is not open (the server refuses it, or it closed) `list()` is
// null and the page polls GET /procedures as before; it reconnects with a
// growing delay.

import { api } from "./api.js";

/** The first delay before reconnecting, doubled up to the longest. */
const RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;

let socket = null;
let retry = RETRY_MS;
/** name -> metadata while subscribed and loaded; null otherwise. */
let procedures = null;
/** Changes that arrived while the list was loading, applied after it. */
let pending = null;
const listeners = new Set();

/** The procedures serving now, sorted by name, or null when not subscribed (then poll). */
export function list() {
  if (!procedures) return null;
  return [...procedures.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Calls `listener(change)` on every change the server tells; answers a function that stops it. */
export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function apply(change) {
  if (change.procedure) procedures.set(change.name, change.procedure);
  else procedures.delete(change.name);
}

function tell(change) {
  for (const listener of listeners) listener(change);
}

async function load() {
  pending = [];
  try {
    const loaded = await api.list();
    procedures = new Map(loaded.map((meta) => [meta.name, meta]));
    for (const change of pending) apply(change);
    pending = null;
    tell(null);
  } catch {
    // The server did not answer: start again from the connection.
    socket?.close();
  }
}

/** Opens the socket and subscribes; on any close, falls back to polling and tries again later. */
export function connect() {
  if (socket) return;
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/rpc`;
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    return later();
  }
  socket = ws;
  ws.addEventListener("open", () => {
    ws.send(JSON.stringify({ jsonrpc: "2.0", method: "wasmrpc.subscribe", params: ["procedures"], id: 1 }));
  });
  ws.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.id === 1 && typeof message.result === "string") {
      retry = RETRY_MS;
      load();
    } else if (message.method === "wasmrpc.procedures") {
      const change = message.params?.result;
      if (!change) return;
      if (procedures) {
        apply(change);
        tell(change);
      } else if (pending) {
        pending.push(change);
      }
    }
  });
  ws.addEventListener("close", () => {
    socket = null;
    procedures = null;
    pending = null;
    tell(null);
    later();
  });
}

function later() {
  setTimeout(connect, retry);
  retry = Math.min(retry * 2, MAX_RETRY_MS);
}
