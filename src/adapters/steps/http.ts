/**
 * The `http` step: one HTTP request, guarded against SSRF, with an Idempotency-Key on every
 * request that may change state. Outputs `status`, `headers`, `body` (JSON when JSON) and `url`.
 */
import { NonRetriableError } from "../../core/errors.js";
import { httpMethod, httpTarget } from "../../core/policy/effects.js";
import type { ResolvedConnection, StepExecutor } from "../../ports/step-executor.js";
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
    const url = buildUrl(rawUrl, conn, params);
    const expect = parseExpect(params.expect);
    const maxBytes = optNumber(KIND, params, "max_bytes", { min: 1, integer: true }) ?? DEFAULT_MAX_BYTES;

    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(optStringMap(KIND, params, "headers"))) headers[k.toLowerCase()] = v;
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

function buildUrl(raw: string, conn: ResolvedConnection | undefined, params: Params): string {
  let text = raw;
  if (conn) {
    if (conn.type !== "http") {
      throw paramError(KIND, "connection", `names connection '${conn.name}' of type ${conn.type}; an http step needs type http`);
    }
    if (!conn.base_url) throw paramError(KIND, "connection", `'${conn.name}' has no base_url`);
    const base = parseAbsolute(conn.base_url, "connection base_url");
    text = httpTarget({ url: raw }, conn.base_url);
    const target = parseAbsolute(text, "url");
    if (target.origin !== base.origin) {
      throw paramError(KIND, "url", `is absolute and leaves connection '${conn.name}' (${base.origin}); give a path relative to its base_url`);
    }
  }
  const url = parseAbsolute(text, "url");
  const query = params.query;
  if (query !== undefined && query !== null) {
    if (!isRecord(query)) throw paramError(KIND, "query", `must be a map, not ${typeName(query)}`);
    for (const [k, v] of Object.entries(query)) {
      for (const item of Array.isArray(v) ? v : [v]) {
        if (item === undefined || item === null) continue;
        if (typeof item === "object") throw paramError(KIND, `query.${k}`, "must be a string, number or boolean");
        url.searchParams.append(k, String(item));
      }
    }
  }
  return url.href;
}

function parseAbsolute(text: string, what: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new NonRetriableError("PARAM_INVALID", `${KIND}: ${what} '${text}' is not an absolute http(s) URL`, { url: text });
  }
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
