/**
 * Client stub of the wasmrpc procedures {procedures}.
 *
 *     const client = new Client("http://127.0.0.1:8080");
 *     await client.<procedure>.<method>(...);
 *
 * A JSON-RPC error answer rejects with `RpcError` (`code`, `message`,
 * `data`); no answer at all with `TransportError`; an answer that is not a
 * JSON-RPC response with `ProtocolError`. Needs only `fetch`; a `ws://` or
 * `wss://` URL (one WebSocket connection for every call, `close()` it when
 * done) needs `WebSocket` (browsers, Node 22+).
 */

/** A JSON-RPC error answer: the procedure's own error or the server's. */
export class RpcError extends Error {
  readonly code: number;
  readonly data: unknown;

  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = "RpcError";
    this.code = code;
    this.data = data;
  }
}

/** No answer: the server is unreachable, the connection broke, or the time limit passed. */
export class TransportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TransportError";
  }
}

/** An answer that is not the JSON-RPC response the stub expects. */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProtocolError";
  }
}

export interface ClientOptions {
  /**
   * A caller key (`wasmrpc keys create`), sent as `Authorization: Bearer <key>`;
   * over WebSocket as the subprotocol `wasmrpc.bearer.<key>` (browsers send no
   * headers there).
   */
  key?: string;
  /** The server's admin token, sent as `key` is (a key to every procedure). */
  adminToken?: string;
  /** Time limit of each call or batch, in milliseconds (default 30000). */
  timeoutMs?: number;
  /**
   * The WebSocket class for a `ws://` URL: the global one by default
   * (browsers, Node 22+; Node 20 and 21 with `--experimental-websocket`), or
   * a compatible one such as the `ws` package's.
   */
  webSocket?: WebSocketClass;
}

/** What the stub uses of a WebSocket: the standard one, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  // `any`: each class has its own event types.
  onopen: ((event: any) => void) | null;
  onmessage: ((event: any) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: any) => void) | null;
}

/** A WebSocket class: `new (url, protocols)`. */
export type WebSocketClass = new (url: string, protocols?: string | string[]) => WebSocketLike;

type Params = Record<string, unknown>;
type Call = <T>(method: string, params: Params) => Promise<T>;
interface Queued {
  method: string;
  params: Params;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function reason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
}

/** The result of one JSON-RPC response; its error thrown as `RpcError`. */
function outcome(answer: unknown): unknown {
  if (!isObject(answer) || answer.jsonrpc !== "2.0") {
    throw new ProtocolError(`expected a JSON-RPC 2.0 response, got ${JSON.stringify(answer)}`);
  }
  if ("error" in answer) {
    const error = answer.error;
    if (!isObject(error) || typeof error.code !== "number" || typeof error.message !== "string") {
      throw new ProtocolError(`expected a JSON-RPC error object, got ${JSON.stringify(error)}`);
    }
    throw new RpcError(error.code, error.message, error.data);
  }
  if (!("result" in answer)) throw new ProtocolError(`expected a result or an error, got ${JSON.stringify(answer)}`);
  return answer.result;
}

/** The server's /rpc endpoint at `url`. */
function rpcEndpoint(url: string): string {
  const base = url.replace(/\/+$/, "");
  return base.endsWith("/rpc") ? base : `${base}/rpc`;
}

/** How a client sends its requests: over HTTP or WebSocket. */
abstract class Transport {
  abstract readonly endpoint: string;
  private lastId = 0;

  /** The first of `count` request ids no other request of this client uses. */
  ids(count: number): number {
    const first = this.lastId + 1;
    this.lastId += count;
    return first;
  }

  /** Sends `body` (a request with id `id`, or a batch whose first id is `id`); resolves with the answer. */
  abstract post(body: unknown, id: number): Promise<unknown>;

  /** Closes the connection, if any. */
  close(): void {}

  async call<T>(method: string, params: Params): Promise<T> {
    const id = this.ids(1);
    const answer = await this.post({ jsonrpc: "2.0", method, params, id }, id);
    return outcome(answer) as T;
  }
}

/** POSTs JSON-RPC requests to the server's /rpc with `fetch`. */
class HttpTransport extends Transport {
  readonly endpoint: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;

  constructor(url: string, options: ClientOptions) {
    super();
    this.endpoint = rpcEndpoint(url);
    this.headers = { "content-type": "application/json" };
    const bearer = options.key ?? options.adminToken;
    if (bearer) this.headers.authorization = `Bearer ${bearer}`;
    this.timeoutMs = options.timeoutMs ?? 30000;
  }

  async post(body: unknown): Promise<unknown> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(this.endpoint, {
        method: "POST",
        headers: this.headers,
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw new TransportError(`cannot reach the server at ${this.endpoint}: ${reason(error)}`);
    }
    try {
      // A refusal such as 413 still carries a JSON-RPC error.
      return JSON.parse(text);
    } catch {
      throw new ProtocolError(`the server answered HTTP ${response.status} without a JSON-RPC response: ${text.slice(0, 200)}`);
    }
  }
}

/** A request sent over WebSocket, waiting for its answer. */
interface Waiting {
  resolve: (answer: unknown) => void;
  reject: (error: Error) => void;
  /** The connection it went out on (none yet: connecting). */
  socket?: WebSocketLike;
}

/**
 * Sends JSON-RPC requests over one WebSocket connection to the server's /rpc,
 * any number at once; each answer goes to the request with its id (a batch
 * waits under its first id). The connection is made at the first call and
 * again after it drops; the requests it carried then reject with
 * `TransportError`.
 */
class WsTransport extends Transport {
  readonly endpoint: string;
  private readonly webSocket: WebSocketClass;
  /** What the handshake carries the key in: subprotocols (browsers send no headers), or headers. */
  private readonly init?: string[];
  private readonly timeoutMs: number;
  private connecting: Promise<WebSocketLike> | null = null;
  private readonly waiting = new Map<number, Waiting>();

  constructor(url: string, options: ClientOptions) {
    super();
    this.endpoint = rpcEndpoint(url);
    const global = (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
    const webSocket = options.webSocket ?? global;
    if (webSocket === undefined) {
      throw new Error(
        `a WebSocket URL (${url}) needs a WebSocket class: browsers and Node 22+ have one (Node 20 and 21 ` +
          "with --experimental-websocket), or pass one as the `webSocket` option (e.g. the `ws` package's)",
      );
    }
    this.webSocket = webSocket;
    const bearer = options.key ?? options.adminToken;
    // A key that is a valid subprotocol token (every caller key is) goes as
    // `wasmrpc.bearer.KEY` beside `wasmrpc`, which works in browsers too;
    // anything else (an admin token may hold any character) as a header,
    // which Node's WebSocket takes in place of the protocols.
    if (bearer && /^[A-Za-z0-9._~!#$%&'*+^`|-]+$/.test(bearer)) this.init = ["wasmrpc", `wasmrpc.bearer.${bearer}`];
    else if (bearer) this.init = { headers: { authorization: `Bearer ${bearer}` } } as unknown as string[];
    this.timeoutMs = options.timeoutMs ?? 30000;
  }

  post(body: unknown, id: number): Promise<unknown> {
    const answer = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new TransportError(`no answer from ${this.endpoint} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      const settled = () => {
        clearTimeout(timer);
        this.waiting.delete(id);
      };
      this.waiting.set(id, {
        resolve: (value) => {
          settled();
          resolve(value);
        },
        reject: (error) => {
          settled();
          reject(error);
        },
      });
    });
    this.send(JSON.stringify(body), id).catch((error: Error) => this.waiting.get(id)?.reject(error));
    return answer;
  }

  close(): void {
    const connecting = this.connecting;
    this.connecting = null;
    connecting?.then((socket) => socket.close(1000, "the client closed it"), () => undefined);
  }

  /** Sends `text` for the request `id`, connecting first if need be (once more if the connection had dropped unseen). */
  private async send(text: string, id: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const connecting = this.connect();
      const socket = await connecting;
      const waiting = this.waiting.get(id);
      if (waiting === undefined) return; // timed out meanwhile
      if (socket.readyState === 1) {
        waiting.socket = socket;
        try {
          socket.send(text);
          return;
        } catch (error) {
          waiting.socket = undefined;
          if (attempt === 2) throw new TransportError(`the WebSocket connection to ${this.endpoint} failed: ${reason(error)}`);
        }
      } else if (attempt === 2) {
        throw new TransportError(`the WebSocket connection to ${this.endpoint} closed`);
      }
      // It dropped unseen: the next turn connects anew.
      if (this.connecting === connecting) this.connecting = null;
    }
  }

  /** The open connection, made now if there is none. */
  private connect(): Promise<WebSocketLike> {
    if (this.connecting !== null) return this.connecting;
    const connecting = new Promise<WebSocketLike>((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = new this.webSocket(this.endpoint, this.init);
      } catch (error) {
        reject(new TransportError(`cannot reach the server at ${this.endpoint}: ${reason(error)}`));
        return;
      }
      let open = false;
      let failed = false;
      // The first error or close ends the connection (some WebSocket classes
      // fire no close after a failed handshake).
      const fail = (why: string) => {
        if (failed) return;
        failed = true;
        if (this.connecting === connecting) this.connecting = null;
        if (!open) reject(new TransportError(`cannot reach the server at ${this.endpoint}: ${why}`));
        const error = new TransportError(`the WebSocket connection to ${this.endpoint} closed: ${why}`);
        for (const waiting of [...this.waiting.values()]) if (waiting.socket === socket) waiting.reject(error);
      };
      socket.onopen = () => {
        open = true;
        resolve(socket);
      };
      socket.onmessage = (event: { data?: unknown }) => this.route(event.data);
      socket.onclose = (event: { code?: number; reason?: string }) =>
        fail(`code ${event.code ?? "?"}${event.reason ? ` (${event.reason})` : ""}`);
      socket.onerror = (event: { message?: unknown }) =>
        fail(typeof event.message === "string" && event.message !== "" ? event.message : "a WebSocket error");
    });
    this.connecting = connecting;
    return connecting;
  }

  /** Hands the answer in `data` to the request waiting for it; notifications and strays go nowhere. */
  private route(data: unknown): void {
    let answer: unknown;
    try {
      answer = JSON.parse(String(data));
    } catch {
      return;
    }
    let id: unknown;
    if (Array.isArray(answer)) {
      // A batch's answers: any of their ids names it (one may be missing, and they come in any order).
      id = answer.map((a) => (isObject(a) ? a.id : undefined)).find((i) => typeof i === "number" && this.waiting.has(i));
    } else if (isObject(answer) && !("method" in answer)) {
      // No id: an error the server could not tie to a request; the oldest one is the likeliest.
      id = answer.id ?? this.waiting.keys().next().value;
    }
    if (typeof id === "number") this.waiting.get(id)?.resolve(answer);
  }
}

function openTransport(url: string, options: ClientOptions): Transport {
  return /^wss?:\/\//i.test(url) ? new WsTransport(url, options) : new HttpTransport(url, options);
}
