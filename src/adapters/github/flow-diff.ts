/**
 * What changed between two sets of flows (a release and the one before it, a pull request's
 * head and its base): flows added, changed and removed, their triggers, and the risk diff —
 * new or changed write steps, new connections, changed approvers and policy. Pure.
 */
import { canonicalJson } from "../../core/engine/gates.js";
import type { Approvers, Config, Diagnostic, Flow, Step, WaitSpec } from "../../core/flow/types.js";
import { coverOf, describeCover } from "../../core/engine/coverage.js";
import { effectUnder } from "../../core/policy/effects.js";
import { cell } from "./annotations.js";

export interface FlowSetEntry {
  path: string;
  text?: string;
  flow?: Flow;
  diagnostics: Diagnostic[];
}

export interface FlowSet {
  config: Config;
  flows: FlowSetEntry[];
}

export type Change = "added" | "changed" | "removed" | "unchanged";

export interface FlowChange {
  name: string;
  path: string;
  change: Change;
  valid: boolean;
  triggers: string[];
  triggersBefore?: string[];
  steps?: { added: string[]; removed: string[]; changed: string[] };
}

export interface RiskChange {
  flow: string;
  kind: "write_step" | "connection" | "approvers" | "policy";
  message: string;
}

export interface FlowDiff {
  flows: FlowChange[];
  risks: RiskChange[];
  configChanged: boolean;
}

const stem = (path: string) => path.split("/").pop()?.replace(/\.ya?ml$/i, "") ?? path;
const nameOf = (e: FlowSetEntry) => e.flow?.name ?? stem(e.path);
const record = (v: unknown): Record<string, unknown> => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** The triggers of a flow, one short phrase each. */
export function describeTriggers(flow: Flow | undefined): string[] {
  if (!flow) return [];
  const out: string[] = [];
  const on = flow.on;
  if (on.manual !== undefined) {
    const inputs = Object.keys(on.manual?.inputs ?? {});
    out.push(inputs.length ? `manual (${inputs.join(", ")})` : "manual");
  }
  for (const s of on.schedule ?? []) out.push(`schedule \`${s.cron}\` (${s.timezone ?? "UTC"})`);
  for (const g of on.github ?? []) {
    out.push(`github \`${g.event}${g.actions?.length ? `.${g.actions.join("|")}` : ""}\`${g.if ? " if …" : ""}`);
  }
  if (on.webhook) out.push("webhook");
  return out;
}

/** Approvers in a few words: `teams acme/ops · users ann · permission write · min 2`. */
export function describeApprovers(a: Approvers | undefined): string {
  if (!a) return "policy default";
  const parts: string[] = [];
  if (a.teams?.length) parts.push(`teams ${a.teams.join(", ")}`);
  if (a.users?.length) parts.push(`users ${a.users.join(", ")}`);
  if (a.permission) parts.push(`permission ${a.permission}`);
  parts.push(`min ${a.min ?? 1}`);
  return parts.join(" · ");
}


function connectionsOf(flow: Flow | undefined): Set<string> {
  const out = new Set<string>();
  for (const s of flow?.steps ?? []) {
    const p = record(s.params);
    if (typeof p.connection === "string") out.add(p.connection);
    for (const v of Object.values(p)) {
      const inner = record(v);
      if (typeof inner.connection === "string") out.add(inner.connection);
    }
  }
  return out;
}

function approvalOf(step: Step): Record<string, unknown> | undefined {
  if (step.kind !== "wait") return undefined;
  const a = (step.params as WaitSpec).approval;
  if (!a) return undefined;
  return { approvers: a.approvers ?? null, allow_self_approval: a.allow_self_approval ?? false, escalate: a.escalate ?? [] };
}

function flowRisks(name: string, before: Flow | undefined, after: Flow, beforeConfig: Config | undefined, config: Config): RiskChange[] {
  const risks: RiskChange[] = [];
  const old = new Map((before?.steps ?? []).map((s) => [s.id, s]));
  after.steps.forEach((step, index) => {
    const effect = effectUnder(step, config);
    const prev = old.get(step.id);
    if (effect === "write") {
      const cover = describeCover(coverOf(after, index, config, effect));
      const prevIndex = before?.steps.indexOf(prev as Step) ?? -1;
      const prevCover = before && prev && prevIndex >= 0 ? describeCover(coverOf(before, prevIndex, beforeConfig ?? config)) : undefined;
      if (!prev || prev.kind !== step.kind) risks.push({ flow: name, kind: "write_step", message: `new write step \`${step.id}\` (${step.kind}): ${cover}` });
      else if (effectUnder(prev, beforeConfig ?? config) !== "write") {
        risks.push({ flow: name, kind: "write_step", message: `step \`${step.id}\` (${step.kind}) now writes: ${cover}` });
      } else if (canonicalJson(prev.params) !== canonicalJson(step.params)) {
        risks.push({ flow: name, kind: "write_step", message: `write step \`${step.id}\` (${step.kind}) changed: ${cover}` });
      } else if (prevCover !== cover) {
        risks.push({ flow: name, kind: "write_step", message: `write step \`${step.id}\` (${step.kind}) is now ${cover} (was ${prevCover})` });
      }
    }
    const approval = approvalOf(step);
    const prevApproval = prev ? approvalOf(prev) : undefined;
    if (approval && prevApproval && canonicalJson(approval) !== canonicalJson(prevApproval)) {
      const a = (step.params as WaitSpec).approval;
      const b = (prev?.params as WaitSpec).approval;
      const parts = [`approvers of gate \`${step.id}\`: ${describeApprovers(b?.approvers)} → ${describeApprovers(a?.approvers)}`];
      if ((a?.allow_self_approval ?? false) !== (b?.allow_self_approval ?? false)) parts.push(`self-approval ${a?.allow_self_approval ? "now allowed" : "no longer allowed"}`);
      if (canonicalJson(a?.escalate ?? []) !== canonicalJson(b?.escalate ?? [])) parts.push("escalation changed");
      risks.push({ flow: name, kind: "approvers", message: parts.join("; ") });
    }
  });
  for (const prev of before?.steps ?? []) {
    if (approvalOf(prev) && !after.steps.some((s) => s.id === prev.id && approvalOf(s))) {
      risks.push({ flow: name, kind: "approvers", message: `approval step \`${prev.id}\` removed` });
    }
  }
  const had = connectionsOf(before);
  for (const c of connectionsOf(after)) {
    if (had.has(c)) continue;
    const conn = config.connections[c];
    const where = conn ? `${conn.type}, ${(conn.environments ?? ["live", "draft"]).join("+")}` : "not declared";
    risks.push({ flow: name, kind: "connection", message: `uses connection \`${c}\` (${where})` });
  }
  return risks;
}

function configRisks(before: Config | undefined, after: Config): RiskChange[] {
  if (!before) return [];
  const risks: RiskChange[] = [];
  const flow = ".github/sluice.yml";
  for (const [name, conn] of Object.entries(after.connections)) {
    const prev = before.connections[name];
    if (!prev) risks.push({ flow, kind: "connection", message: `new connection \`${name}\` (${conn.type}, ${(conn.environments ?? ["live", "draft"]).join("+")})` });
    else if (canonicalJson(prev) !== canonicalJson(conn)) risks.push({ flow, kind: "connection", message: `connection \`${name}\` changed` });
  }
  const p = after.policy;
  const q = before.policy;
  if (canonicalJson(p.approvers) !== canonicalJson(q.approvers)) {
    risks.push({ flow, kind: "approvers", message: `policy approvers: ${describeApprovers(q.approvers)} → ${describeApprovers(p.approvers)}` });
  }
  for (const key of ["auto_approve", "require_approval", "allow", "deny", "drafts", "allow_self_approval"] as const) {
    if (canonicalJson(p[key]) !== canonicalJson(q[key])) {
      risks.push({ flow, kind: "policy", message: `policy.${key}: ${canonicalJson(q[key])} → ${canonicalJson(p[key])}` });
    }
  }
  return risks;
}

function stepChanges(before: Flow | undefined, after: Flow | undefined): FlowChange["steps"] {
  const a = new Map((before?.steps ?? []).map((s) => [s.id, canonicalJson(s)]));
  const b = new Map((after?.steps ?? []).map((s) => [s.id, canonicalJson(s)]));
  return {
    added: [...b.keys()].filter((k) => !a.has(k)),
    removed: [...a.keys()].filter((k) => !b.has(k)),
    changed: [...b.keys()].filter((k) => a.has(k) && a.get(k) !== b.get(k)),
  };
}

function sameEntry(a: FlowSetEntry, b: FlowSetEntry): boolean {
  if (a.text !== undefined && b.text !== undefined) return a.text === b.text;
  return canonicalJson(a.flow ?? null) === canonicalJson(b.flow ?? null);
}

/** The diff from `before` (undefined: nothing released yet) to `after`. */
export function diffFlows(before: FlowSet | undefined, after: FlowSet): FlowDiff {
  const old = new Map((before?.flows ?? []).map((e) => [e.path, e]));
  const flows: FlowChange[] = [];
  const risks: RiskChange[] = [];
  for (const e of after.flows) {
    const prev = old.get(e.path);
    const change: Change = !prev ? "added" : sameEntry(prev, e) ? "unchanged" : "changed";
    flows.push({
      name: nameOf(e),
      path: e.path,
      change,
      valid: e.flow !== undefined,
      triggers: describeTriggers(e.flow),
      ...(prev && change === "changed" ? { triggersBefore: describeTriggers(prev.flow), steps: stepChanges(prev.flow, e.flow) } : {}),
    });
    if (e.flow && change !== "unchanged") risks.push(...flowRisks(nameOf(e), prev?.flow, e.flow, before?.config, after.config));
  }
  for (const [path, prev] of old) {
    if (!after.flows.some((e) => e.path === path)) {
      flows.push({ name: nameOf(prev), path, change: "removed", valid: prev.flow !== undefined, triggers: [], triggersBefore: describeTriggers(prev.flow) });
    }
  }
  const configChanged = before !== undefined && canonicalJson(before.config) !== canonicalJson(after.config);
  risks.push(...configRisks(before?.config, after.config));
  const order: Record<Change, number> = { added: 0, changed: 1, removed: 2, unchanged: 3 };
  flows.sort((x, y) => order[x.change] - order[y.change] || x.name.localeCompare(y.name));
  return { flows, risks, configChanged };
}

/** The diff's counts in a few words: `1 added, 2 changed, 0 removed`. */
export function diffHeadline(diff: FlowDiff): string {
  const n = (c: Change) => diff.flows.filter((f) => f.change === c).length;
  return `${n("added")} added, ${n("changed")} changed, ${n("removed")} removed`;
}

/** The flow table and the risk list, in Markdown. */
export function renderDiff(diff: FlowDiff, opts: { showUnchanged?: boolean } = {}): string {
  const rows = diff.flows.filter((f) => opts.showUnchanged || f.change !== "unchanged");
  const lines: string[] = [];
  if (rows.length === 0) lines.push("No flow changed.");
  else {
    lines.push("| flow | change | triggers | steps |", "|---|---|---|---|");
    for (const f of rows) {
      const name = `\`${f.name}\`${f.valid ? "" : " ⚠️ invalid"}<br><sub>${cell(f.path)}</sub>`;
      const triggers =
        f.change === "removed"
          ? `~~${cell((f.triggersBefore ?? []).join(", ") || "—")}~~`
          : f.triggersBefore && canonicalJson(f.triggersBefore) !== canonicalJson(f.triggers)
            ? `${cell(f.triggersBefore.join(", ") || "—")} → ${cell(f.triggers.join(", ") || "—")}`
            : cell(f.triggers.join(", ") || "—");
      const s = f.steps;
      const steps = s ? [s.added.length ? `+${s.added.join(", +")}` : "", s.removed.length ? `−${s.removed.join(", −")}` : "", s.changed.length ? `~${s.changed.join(", ~")}` : ""].filter(Boolean).join(" ") : "";
      lines.push(`| ${name} | ${f.change} | ${triggers} | ${cell(steps) || "—"} |`);
    }
  }
  lines.push("", "**Risk changes**", "");
  if (diff.risks.length === 0) lines.push("None: no new write steps, connections or approvers.");
  else for (const r of diff.risks) lines.push(`- **${cell(r.flow)}** (${r.kind.replace("_", " ")}): ${r.message}`);
  return lines.join("\n");
}
