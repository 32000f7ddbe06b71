/**
 * What policy refuses in a step, as far as validation can tell from its raw parameters (the
 * executors refuse the same again on the evaluated ones): a deny rule that matches the ssh command
 * or the normalised http request, an http url that leaves its connection's base_url, a Host header.
 */
import type { Config, Step } from "../flow/types.js";
import { HOST_HEADER_REFUSAL, httpMethod, httpTarget } from "./effects.js";
import { firstHttpDeny, firstSshDeny } from "./patterns.js";

export interface PolicyRefusal {
  code: "POLICY_DENIED";
  message: string;
  /** JSON pointer below the step's kind (`run`, `url`, `headers/Host`). */
  path: string;
}

const isExpression = (v: unknown): boolean => typeof v === "string" && v.includes("${{");

export function policyRefusals(step: Pick<Step, "kind" | "params">, config: Pick<Config, "policy" | "connections">): PolicyRefusal[] {
  const p = step.params !== null && typeof step.params === "object" ? (step.params as Record<string, unknown>) : {};
  const out: PolicyRefusal[] = [];
  if (step.kind === "ssh" && typeof p.run === "string") {
    const rule = firstSshDeny(config.policy.deny.ssh, p.run, p.env);
    if (rule) out.push({ code: "POLICY_DENIED", message: `this command is refused by the policy's deny.ssh rule '${rule}'`, path: "run" });
  }
  if (step.kind === "http" && typeof p.url === "string") {
    const conn = typeof p.connection === "string" ? p.connection : undefined;
    const method = httpMethod(p);
    const target = httpTarget(p, conn === undefined ? undefined : config.connections[conn]?.base_url, conn);
    if (!target.ok && target.code === "POLICY_DENIED" && !isExpression(p.url)) {
      out.push({ code: "POLICY_DENIED", message: target.reason, path: "url" });
    }
    const rule = firstHttpDeny(config.policy.deny.http, method, target.ok ? target.url : p.url);
    if (rule) out.push({ code: "POLICY_DENIED", message: `${method} ${p.url} is refused by the policy's deny.http rule '${rule}'`, path: "url" });
    const headers = p.headers !== null && typeof p.headers === "object" ? Object.keys(p.headers) : [];
    const host = headers.find((h) => h.trim().toLowerCase() === "host");
    if (host !== undefined) out.push({ code: "POLICY_DENIED", message: HOST_HEADER_REFUSAL, path: `headers/${host.replace(/~/g, "~0").replace(/\//g, "~1")}` });
  }
  return out;
}
