/**
 * The outbound HTTP client of the step executors: node:http/node:https with the SSRF guard
 * applied to the resolved address of every hop (the socket connects to the checked address
 * through a `lookup` hook), every hop requested in the URL's normal form that policy rules were
 * matched against (core/policy/url.ts), redirects followed by hand (at most 5), a byte limit on
 * the body, and the step's deadline signal.
 */
import http from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { NonRetriableError, RetryAfterError, SluiceError } from "../../core/errors.js";
import { normaliseHttpUrl } from "../../core/policy/url.js";
import { checkRequest, resolveGuarded, type ResolvedAddress, type Resolver, type SsrfOptions } from "./ssrf.js";

export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
export const MAX_REDIRECTS = 5;

export interface HttpCall {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Largest body accepted (default 10 MiB). */
  maxBytes?: number;
  /** What a larger body does: an `OUTPUT_TOO_LARGE` error (default) or a truncated body. */
  oversize?: "error" | "truncate";
  signal: AbortSignal;
  ssrf: SsrfOptions;
  /** Whether to follow a redirect with this status (default: always). */
  followRedirect?: (status: number) => boolean;
  /** Throws to refuse following a redirect as `method` to `url` (the next hop, before any check). */
  redirectGuard?: (method: string, url: URL) => void;
  resolver?: Resolver;
}

export interface HttpReply {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  truncated: boolean;
  /** The URL that answered, after redirects. */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that must not follow a redirect to another origin. */
const CREDENTIAL_HEADERS = ["authorization", "cookie", "proxy-authorization"];

export async function httpRequest(call: HttpCall): Promise<HttpReply> {
  let method = call.method.toUpperCase();
  let url = parseUrl(call.url);
  let headers = lowerKeys(call.headers ?? {});
  let body = call.body;
  for (let hop = 0; ; hop++) {
    throwIfAborted(call.signal);
    const decision = checkRequest(method, url, call.ssrf);
    url = decision.url;
    const target = await resolveGuarded(method, url, decision, call.resolver);
    throwIfAborted(call.signal);
    const follow = (status: number): boolean => REDIRECTS.has(status) && (call.followRedirect?.(status) ?? true);
    const reply = await once(method, url, headers, body, target, call, follow);
    if (!("location" in reply)) return reply;
    if (hop >= MAX_REDIRECTS) {
      throw new NonRetriableError("HTTP_STATUS", `${call.method} ${call.url}: more than ${MAX_REDIRECTS} redirects`, {
        url: url.href,
      });
    }
    let next: URL;
    try {
      next = new URL(reply.location, url);
    } catch {
      throw new NonRetriableError("HTTP_STATUS", `${url.href} redirected to an invalid location '${reply.location}'`, {
        url: url.href,
      });
    }
    if (reply.status === 303 || ((reply.status === 301 || reply.status === 302) && method === "POST")) {
      if (method !== "HEAD") method = "GET";
      body = undefined;
      headers = withoutKeys(headers, ["content-type", "content-length"]);
    }
    call.redirectGuard?.(method, next);
    if (next.origin !== url.origin) headers = withoutKeys(headers, CREDENTIAL_HEADERS);
    url = next;
  }
}

type OnceResult = HttpReply | { status: number; location: string };

function once(
  method: string,
  url: URL,
  headers: Record<string, string>,
  body: string | Buffer | undefined,
  target: ResolvedAddress,
  call: HttpCall,
  follow: (status: number) => boolean,
): Promise<OnceResult> {
  const maxBytes = call.maxBytes ?? DEFAULT_MAX_BYTES;
  const lookup = ((_host: string, options: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (options?.all) cb(null, [{ address: target.address, family: target.family }]);
    else cb(null, target.address, target.family);
  }) as unknown as LookupFunction;
  const payload = body === undefined ? undefined : typeof body === "string" ? Buffer.from(body) : body;
  const sendHeaders = { ...headers };
  if (payload) sendHeaders["content-length"] = String(payload.length);
  const mod = url.protocol === "https:" ? https : http;

  return new Promise<OnceResult>((resolve, reject) => {
    let settled = false;
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    const req = mod.request(
      {
        protocol: url.protocol,
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        port: url.port || undefined,
        path: `${url.pathname}${url.search}`,
        method,
        headers: sendHeaders,
        lookup,
        agent: false,
        signal: call.signal,
        ...(url.protocol === "https:" && !isIpLiteral(url.hostname) ? { servername: url.hostname } : {}),
      },
      (res) => {
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (location && follow(status)) {
          res.resume();
          settled = true;
          resolve({ status, location });
          return;
        }
        const declared = Number(res.headers["content-length"]);
        const oversize = call.oversize ?? "error";
        if (oversize === "error" && Number.isFinite(declared) && declared > maxBytes) {
          fail(tooLarge(url, maxBytes));
          res.destroy();
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        let truncated = false;
        res.on("data", (chunk: Buffer) => {
          if (truncated || settled) return;
          if (size + chunk.length > maxBytes) {
            if (oversize === "error") {
              fail(tooLarge(url, maxBytes));
              res.destroy();
              return;
            }
            chunks.push(chunk.subarray(0, maxBytes - size));
            size = maxBytes;
            truncated = true;
            settled = true;
            resolve(reply());
            res.destroy();
            return;
          }
          chunks.push(chunk);
          size += chunk.length;
        });
        const reply = (): HttpReply => ({
          status,
          headers: flattenHeaders(res.headers),
          body: Buffer.concat(chunks),
          truncated,
          url: url.href,
        });
        res.on("end", () => {
          if (settled) return;
          settled = true;
          resolve(reply());
        });
        res.on("error", (err) => fail(networkError(err, url, call.signal)));
        res.on("aborted", () => fail(networkError(new Error("the response was cut off"), url, call.signal)));
      },
    );
    req.on("error", (err) => fail(networkError(err, url, call.signal)));
    if (payload) req.end(payload);
    else req.end();
  });
}

function isIpLiteral(hostname: string): boolean {
  return /^\[.*\]$/.test(hostname) || /^[0-9.]+$/.test(hostname);
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw reasonOf(signal);
}

function reasonOf(signal: AbortSignal): SluiceError {
  const r: unknown = signal.reason;
  return r instanceof SluiceError ? r : new NonRetriableError("STEP_ABORTED", "the step was aborted");
}

function networkError(err: unknown, url: URL, signal: AbortSignal): SluiceError {
  if (signal.aborted) return reasonOf(signal);
  if (err instanceof SluiceError) return err;
  const e = err as NodeJS.ErrnoException;
  const what = e.code ? `${e.code}` : e.message;
  return new SluiceError("CONNECTION_FAILED", `could not reach ${url.origin}: ${what}`, {
    url: url.href,
    cause: e.code ?? e.message,
  });
}

function tooLarge(url: URL, maxBytes: number): NonRetriableError {
  return new NonRetriableError("OUTPUT_TOO_LARGE", `the response of ${url.href} is larger than max_bytes (${maxBytes} bytes)`, {
    url: url.href,
    max_bytes: maxBytes,
  });
}

function parseUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new NonRetriableError("PARAM_INVALID", `'${text}' is not an absolute URL`, { url: text });
  }
}

function lowerKeys(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v;
  return out;
}

function withoutKeys(h: Record<string, string>, keys: string[]): Record<string, string> {
  const out = { ...h };
  for (const k of keys) delete out[k];
  return out;
}

function flattenHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    out[k] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

/** Whether a status is expected; `expect` entries are codes (200) or classes ("2xx"). */
export function statusMatches(status: number, expect: readonly (number | string)[]): boolean {
  return expect.some((e) => {
    if (typeof e === "number") return e === status;
    const m = /^([1-5])xx$/i.exec(e.trim());
    if (m) return Math.floor(status / 100) === Number(m[1]);
    return Number(e) === status;
  });
}

/** Milliseconds from a Retry-After header (seconds or an HTTP date), if it has a usable value. */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const v = value.trim();
  if (/^[0-9]+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * The error for an unexpected status: 429 and 5xx are retryable (a RetryAfterError when the
 * server says when), anything else is not.
 */
export function statusError(what: string, reply: HttpReply, now: number): SluiceError {
  const text = reply.body.toString("utf8");
  const details = {
    status: reply.status,
    url: reply.url,
    body: text.length > 2000 ? `${text.slice(0, 2000)}…` : text,
  };
  const message = `${what}: ${reply.url} answered ${reply.status}`;
  if (reply.status === 429 || reply.status >= 500) {
    const after = retryAfterMs(reply.headers["retry-after"], now);
    if (after !== undefined) return new RetryAfterError("HTTP_STATUS", `${message} (retry after ${after} ms)`, after, details);
    return new SluiceError("HTTP_STATUS", message, details);
  }
  return new NonRetriableError("HTTP_STATUS", message, details);
}

/** Whether a content type is JSON (application/json, application/*+json). */
export function isJsonContentType(ct: string | undefined): boolean {
  if (!ct) return false;
  const type = ct.split(";")[0]!.trim().toLowerCase();
  return type === "application/json" || type.endsWith("+json") || type === "text/json";
}

/** Parses a body as the content type says: JSON when it is JSON (and parses), else text. */
export function decodeBody(reply: Pick<HttpReply, "body" | "headers">): unknown {
  const text = reply.body.toString("utf8");
  if (text !== "" && isJsonContentType(reply.headers["content-type"])) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
  return text;
}

/** The SSRF options of a step: the policy's rules and the hosts its connections name. */
export function ssrfOptions(policy: { allow: { http?: string[] }; deny: { http?: string[] } }, connectionUrls: (string | undefined)[]): SsrfOptions {
  const allowedHosts: string[] = [];
  for (const u of connectionUrls) {
    if (!u) continue;
    // In the normal form the guard compares with; a connection URL that does not parse allows nothing.
    const n = normaliseHttpUrl(u);
    if (n.ok) allowedHosts.push(new URL(n.url).host);
  }
  return { allowedHosts, allowRules: policy.allow.http ?? [], denyRules: policy.deny.http ?? [] };
}
