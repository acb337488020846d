/**
 * Client stub of the wasmrpc procedures {procedures}.
 *
 *     const client = new Client("http://127.0.0.1:8080");
 *     await client.<procedure>.<method>(...);
 *
 * A JSON-RPC error answer rejects with `RpcError` (`code`, `message`,
 * `data`); no answer at all with `TransportError`; an answer that is not a
 * JSON-RPC response with `ProtocolError`. Needs only `fetch`.
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
  /** Sent as `Authorization: Bearer <token>`. */
  adminToken?: string;
  /** Time limit of each call or batch, in milliseconds (default 30000). */
  timeoutMs?: number;
}

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

/** POSTs JSON-RPC requests to the server's /rpc with `fetch`. */
class Transport {
  readonly endpoint: string;
  private readonly headers: Record<string, string>;
  private readonly timeoutMs: number;
  private nextId = 0;

  constructor(url: string, options: ClientOptions) {
    const base = url.replace(/\/+$/, "");
    this.endpoint = base.endsWith("/rpc") ? base : `${base}/rpc`;
    this.headers = { "content-type": "application/json" };
    if (options.adminToken) this.headers.authorization = `Bearer ${options.adminToken}`;
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

  async call<T>(method: string, params: Params): Promise<T> {
    this.nextId += 1;
    const answer = await this.post({ jsonrpc: "2.0", method, params, id: this.nextId });
    return outcome(answer) as T;
  }
}
