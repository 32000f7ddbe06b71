/**
 * What a step does to the world (SPEC §2 table), and whether policy puts a gate before it.
 * Parameters may be raw (at validation) or evaluated (at run time); an expression where the
 * effect depends on a value is classified as `write`, the safe side.
 */
import type { Config, Effect, Policy, Step, StepKind } from "../flow/types.js";
import { firstHttpRule, firstSshRule } from "./patterns.js";
import { isReadQuery } from "./sql.js";

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function record(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function httpMethod(params: Record<string, unknown>): string {
  return typeof params.method === "string" ? params.method.toUpperCase() : "GET";
}

/** The URL an http step reaches, for policy matching: the connection's base_url joined when given. */
export function httpTarget(params: Record<string, unknown>, baseUrl?: string): string {
  const url = typeof params.url === "string" ? params.url : "";
  if (!baseUrl || /^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return url;
  return baseUrl.replace(/\/+$/, "") + "/" + url.replace(/^\/+/, "");
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
    case "http": {
      const method = httpMethod(p);
      if (READ_METHODS.has(method)) return "read";
      const base = typeof p.connection === "string" ? connectionBaseUrl?.(p.connection) : undefined;
      return firstHttpRule(policy.allow.http, method, httpTarget(p, base)) ? "read" : "write";
    }
    case "db":
      return typeof p.query === "string" && isReadQuery(p.query) ? "read" : "write";
    case "kv":
      return "get" in p ? "read" : "write";
    case "ssh":
      return typeof p.run === "string" && firstSshRule(policy.allow.ssh, p.run) ? "read" : "write";
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
