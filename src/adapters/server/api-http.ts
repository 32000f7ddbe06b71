/**
 * The HTTP plumbing the server's routes and its API share: sluice/v1 envelopes, the status of
 * each error code, bounded bodies.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { SluiceError } from "../../core/errors.js";
import { API_VERSION } from "../cli/output.js";


/** The request's path and query as a URL, or undefined when its target cannot be one: then it is not ours to answer. */
export function requestUrl(req: IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? "/", "http://sluice.invalid");
  } catch {
    return undefined;
  }
}
export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export const MAX_CALLBACK_BYTES = 1024 * 1024;

export const UNAUTHORIZED_MESSAGE =
  "this needs credentials: an API token (Authorization: Bearer <token>, made with 'sluice tokens create'), or, for a run's page and its outputs, the signed link in the run's check run";

export interface ErrorBody {
  code: string;
  message: string;
  details: Record<string, unknown>;
}

/** The HTTP status an error code answers with (the CLI's exit code says the same in its terms). */
export function httpStatusFor(code: string): number {
  switch (code) {
    case "USAGE":
    case "INPUT_INVALID":
      return 400;
    case "UNAUTHORIZED":
      return 401;
    case "FORBIDDEN":
    case "APPROVAL_NOT_ELIGIBLE":
    case "APPROVAL_WRONG_PLACE":
      return 403;
    case "NOT_FOUND":
    case "RUN_NOT_FOUND":
    case "FLOW_NOT_FOUND":
    case "REF_NOT_FOUND":
      return 404;
    case "NOT_WAITING":
    case "STATE_CONFLICT":
    case "APPROVAL_STALE":
      return 409;
    case "OUTPUT_TOO_LARGE":
      return 413;
    case "CALLBACK_INVALID":
    case "FLOW_INVALID":
    case "CONFIG_INVALID":
    case "FLOW_TOO_LARGE":
      return 422;
    case "GITHUB_RATE_LIMITED":
      return 429;
    case "STORE_ERROR":
    case "GITHUB_UNAVAILABLE":
      return 503;
    default:
      return 500;
  }
}

export function errorOf(e: unknown): ErrorBody {
  if (e instanceof SluiceError) return { code: e.code, message: e.message, details: e.details };
  return { code: "INTERNAL", message: e instanceof Error ? e.message : String(e), details: {} };
}

export function send(res: ServerResponse, status: number, type: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(typeof body === "string" ? Buffer.byteLength(body) : body.byteLength),
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, "application/json; charset=utf-8", JSON.stringify(value) + "\n", headers);
}

export function envelope(kind: string, data: unknown, error?: ErrorBody) {
  return { apiVersion: API_VERSION, kind, ok: !error, data: error ? null : data, error: error ?? null };
}

export function sendEnvelopeError(res: ServerResponse, kind: string, e: unknown): void {
  const err = errorOf(e);
  sendJson(res, httpStatusFor(err.code), envelope(kind, null, err));
}

export function methodNotAllowed(res: ServerResponse, allow: string): true {
  sendJson(res, 405, { ok: false, error: { code: "USAGE", message: `method not allowed here; use ${allow}`, details: {} } }, { allow });
  return true;
}

export const isRead = (m: string | undefined) => m === "GET" || m === "HEAD";

export function wantsHtml(req: IncomingMessage): boolean {
  return String(req.headers.accept ?? "").includes("text/html");
}

/** Reads a body of at most `max` bytes; undefined when it is larger (the rest is drained). */
export function readBody(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > max) {
      drain(req);
      return resolve(undefined);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        chunks.length = 0;
        drain(req);
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      if (!over) resolve(Buffer.concat(chunks));
    });
    req.on("error", (e) => {
      if (!over) reject(e);
    });
  });
}

/** Lets a refused upload finish (so the client reads the answer), up to a bound, then hangs up. */
export function drain(req: IncomingMessage): void {
  let drained = 0;
  req.on("data", (c: Buffer) => {
    drained += c.length;
    if (drained > 16 * MAX_CALLBACK_BYTES) req.destroy();
  });
  req.resume();
}

export function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}
