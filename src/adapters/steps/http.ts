/**
 * The `http` step: one HTTP request, guarded against SSRF, with an Idempotency-Key on every
 * request that may change state. Outputs `status`, `headers`, `body` (JSON when JSON) and `url`.
 *
 * It requests exactly the URL that policy classified (SPEC §4): `url` resolved under the
 * connection's base_url (never outside it), with `query`, in its normal form (core/policy/url.ts).
 * A step may not set `Host`. A write method that runs as a read under an allow rule follows a
 * method-keeping redirect only to a URL an allow rule matches too.
 */
import { NonRetriableError } from "../../core/errors.js";
import { HOST_HEADER_REFUSAL, httpMethod, httpTarget } from "../../core/policy/effects.js";
import { firstHttpAllow } from "../../core/policy/patterns.js";
import type { ResolvedConnection, StepContext, StepExecutor } from "../../ports/step-executor.js";
import { withDeadline } from "./deadline.js";
import {
  DEFAULT_MAX_BYTES,
  decodeBody,
  httpRequest,
  ssrfOptions,
  statusError,
  statusMatches,
} from "./http-client.js";
import { isRecord, optNumber, optString, optStringMap, paramError, reqString, typeName, type Params } from "./params.js";

export { httpMethod };

const KIND = "http";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** Whether a method only reads (GET, HEAD, OPTIONS): the policy's effect rule for http. */
export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method.toUpperCase());
}

export const httpExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const method = httpMethod(params);
    if (!/^[A-Z]+$/.test(method)) throw paramError(KIND, "method", `'${method}' is not an HTTP method`);
    const rawUrl = reqString(KIND, params, "url");
    const connName = optString(KIND, params, "connection");
    const conn = connName ? ctx.connection(connName) : undefined;
    const url = targetUrl(params, conn);
    const expect = parseExpect(params.expect);
    const maxBytes = optNumber(KIND, params, "max_bytes", { min: 1, integer: true }) ?? DEFAULT_MAX_BYTES;

    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(optStringMap(KIND, params, "headers"))) headers[k.trim().toLowerCase()] = v;
    if ("host" in headers) throw new NonRetriableError("POLICY_DENIED", `${KIND}: ${HOST_HEADER_REFUSAL}`, { parameter: "headers.Host" });
    let body: string | undefined;
    if (params.body !== undefined && params.body !== null) {
      if (typeof params.body === "string") {
        body = params.body;
        headers["content-type"] ??= "text/plain; charset=utf-8";
      } else {
        body = JSON.stringify(params.body);
        headers["content-type"] ??= "application/json";
      }
    }
    if (!isSafeMethod(method)) headers["idempotency-key"] ??= ctx.idempotencyKey;
    if (conn?.secretValue) headers["authorization"] ??= `Bearer ${conn.secretValue}`;
    headers["user-agent"] ??= "sluice";
    headers["accept"] ??= "application/json, text/plain;q=0.9, */*;q=0.8";

    return withDeadline(ctx, async (deadline) => {
      const reply = await httpRequest({
        method,
        url,
        headers,
        ...(body !== undefined ? { body } : {}),
        maxBytes,
        signal: deadline.signal,
        ssrf: ssrfOptions(ctx.policy, [conn?.base_url]),
        followRedirect: (status) => !statusMatches(status, expect),
        ...(ctx.effect === "read" && !isSafeMethod(method) ? { redirectGuard: allowedRedirects(ctx, method) } : {}),
      });
      if (!statusMatches(reply.status, expect)) throw statusError(`${method} ${rawUrl}`, reply, ctx.now());
      return {
        outputs: {
          status: reply.status,
          headers: reply.headers,
          body: method === "HEAD" ? "" : decodeBody(reply),
          url: reply.url,
        },
      };
    });
  },
};

/**
 * A method that writes runs ungated only because an allow rule matched its URL: a redirect that
 * keeps such a method (307, 308) may only lead to a URL an allow rule matches too.
 */
function allowedRedirects(ctx: StepContext, method: string): (next: string, url: URL) => void {
  return (next, url) => {
    if (isSafeMethod(next) || firstHttpAllow(ctx.policy.allow.http, next, url.href)) return;
    throw new NonRetriableError(
      "POLICY_DENIED",
      `${KIND}: ${method} ran as a read under policy.allow.http, but the server redirected it to ${next} ${url.href}, which no allow rule matches; not followed`,
      { url: url.href },
    );
  };
}

/** The normalised URL to request (core/policy/url.ts): what policy matched is what is requested. */
function targetUrl(params: Params, conn: ResolvedConnection | undefined): string {
  if (conn) {
    if (conn.type !== "http") {
      throw paramError(KIND, "connection", `names connection '${conn.name}' of type ${conn.type}; an http step needs type http`);
    }
    if (!conn.base_url) throw paramError(KIND, "connection", `'${conn.name}' has no base_url`);
  }
  const query = params.query;
  if (query !== undefined && query !== null && !isRecord(query)) throw paramError(KIND, "query", `must be a map, not ${typeName(query)}`);
  const target = httpTarget(params, conn?.base_url, conn?.name);
  if (target.ok) return target.url;
  if (target.code === "POLICY_DENIED") throw new NonRetriableError("POLICY_DENIED", `${KIND}: ${target.reason}`, { url: params.url });
  throw new NonRetriableError("PARAM_INVALID", `${KIND}: ${target.reason}`, { parameter: "url", url: params.url });
}

/** `expect`: a status (200), a class ("2xx"), or a list of them; default 2xx. */
export function parseExpect(v: unknown): (number | string)[] {
  if (v === undefined || v === null) return ["2xx"];
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) throw paramError(KIND, "expect", "must name at least one status");
  return items.map((item) => {
    if (typeof item === "number" && Number.isInteger(item) && item >= 100 && item <= 599) return item;
    if (typeof item === "string" && /^([1-5]xx|[1-5][0-9][0-9])$/i.test(item.trim())) {
      return /xx$/i.test(item.trim()) ? item.trim().toLowerCase() : Number(item.trim());
    }
    throw paramError(KIND, "expect", `entry ${JSON.stringify(item)} is neither a status (200) nor a class ("2xx")`);
  });
}
