/**
 * What a step does to the world (SPEC §2 table), and whether policy puts a gate before it.
 * Parameters may be raw (at validation) or evaluated (at run time); an expression where the
 * effect depends on a value is classified as `write`, the safe side.
 */
import type { Config, Effect, Policy, Step, StepKind } from "../flow/types.js";
import { firstHttpAllow, firstSshAllow } from "./patterns.js";
import { isReadQuery } from "./sql.js";
import { resolveHttpTarget, type UrlResult } from "./url.js";

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** Headers by which many frameworks let a request claim another method (a GET that deletes). */
const METHOD_OVERRIDE_HEADERS = new Set(["x-http-method-override", "x-method-override", "x-http-method"]);
/** Why a step may not set `Host`: validation and the http executor say the same. */
export const HOST_HEADER_REFUSAL =
  "a step cannot set the Host header: it always names the url's host, so that policy and the SSRF guard judge the server actually reached";
/** Headers by which some servers (IIS, Symfony, Zend) route to another path than the request line's. */
const PATH_OVERRIDE_HEADERS = new Set(["x-original-url", "x-rewrite-url"]);

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function httpMethod(params: Record<string, unknown>): string {
  return typeof params.method === "string" ? params.method.toUpperCase() : "GET";
}

/**
 * The lower-cased names of an http step's headers; undefined when `headers` is not a map (an
 * expression not yet evaluated), so that nothing can be said about them.
 */
function httpHeaderNames(params: Record<string, unknown>): string[] | undefined {
  const h = params.headers;
  if (h === undefined || h === null) return [];
  if (typeof h !== "object" || Array.isArray(h)) return undefined;
  return Object.keys(h).map((k) => k.trim().toLowerCase());
}

/**
 * The normalised URL an http step requests: `url` (under the connection's base_url when
 * `baseUrl` is given) with `query` appended. The http executor requests exactly this URL.
 */
export function httpTarget(params: Record<string, unknown>, baseUrl?: string, connection?: string): UrlResult {
  const query = params.query;
  return resolveHttpTarget({
    url: typeof params.url === "string" ? params.url : "",
    ...(baseUrl !== undefined ? { baseUrl } : {}),
    ...(connection !== undefined ? { connection } : {}),
    ...(query !== null && typeof query === "object" && !Array.isArray(query) ? { query: query as Record<string, unknown> } : {}),
  });
}

function httpEffect(p: Record<string, unknown>, policy: Pick<Policy, "allow">, connectionBaseUrl?: (name: string) => string | undefined): Effect {
  const method = httpMethod(p);
  const headers = httpHeaderNames(p);
  // A Host header (refused at run time) or a method override makes any request a possible write.
  if (!headers || headers.some((h) => h === "host" || METHOD_OVERRIDE_HEADERS.has(h))) return "write";
  if (READ_METHODS.has(method)) return "read";
  if (headers.some((h) => PATH_OVERRIDE_HEADERS.has(h))) return "write";
  const conn = typeof p.connection === "string" ? p.connection : undefined;
  const target = httpTarget(p, conn === undefined ? undefined : connectionBaseUrl?.(conn), conn);
  return target.ok && firstHttpAllow(policy.allow.http, method, target.url) ? "read" : "write";
}

export function effectOf(
  step: Pick<Step, "kind" | "params">,
  policy: Pick<Policy, "allow">,
  connectionBaseUrl?: (name: string) => string | undefined,
): Effect {
  const p = record(step.params);
  switch (step.kind) {
    case "wait":
    case "sleep":
      return "none";
    case "llm":
    case "search":
    case "function":
      return "read";
    case "http":
      return httpEffect(p, policy, connectionBaseUrl);
    case "db":
      return typeof p.query === "string" && isReadQuery(p.query) ? "read" : "write";
    case "kv":
      return "get" in p ? "read" : "write";
    case "ssh":
      return typeof p.run === "string" && firstSshAllow(policy.allow.ssh, p.run, p.env) ? "read" : "write";
    case "notify":
    case "github":
      return "write";
  }
}

/** A step's effect under a whole config: its policy, and its connections' base URLs. */
export function effectUnder(step: Pick<Step, "kind" | "params">, config: Pick<Config, "policy" | "connections">): Effect {
  return effectOf(step, config.policy, (name) => config.connections[name]?.base_url);
}

/**
 * The policy classes a step belongs to: its effect, its kind, and `notify` for GitHub comments
 * and labels (SPEC §2: "policed as notify").
 */
export function policyClasses(step: Pick<Step, "kind" | "params">, effect: Effect): string[] {
  const classes: string[] = [effect, step.kind];
  if (step.kind === "github") {
    const p = record(step.params);
    if ("comment" in p || "add_labels" in p) classes.push("notify");
  }
  return classes;
}

/** Whether policy wants an approval before this step (reads and no-effect steps never). */
export function requiresApproval(
  step: Pick<Step, "kind" | "params">,
  effect: Effect,
  policy: Pick<Policy, "auto_approve" | "require_approval">,
): boolean {
  if (effect !== "write") return false;
  const classes = policyClasses(step, effect);
  if (classes.some((c) => policy.auto_approve.includes(c))) return false;
  return classes.some((c) => policy.require_approval.includes(c));
}

export const KINDS_WITH_CONNECTION: Partial<Record<StepKind, readonly string[]>> = {
  http: ["http"],
  llm: ["llm"],
  db: ["postgres", "sqlite"],
  ssh: ["ssh"],
};
