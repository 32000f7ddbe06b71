/**
 * Which approval covers which write (SPEC §4): an explicit approval covers the write steps after
 * it up to the next approval step, or exactly the steps its `covers:` lists; a write no approval
 * covers gets the implicit gate the policy puts before it (or none, where the policy auto-approves
 * it). One reading for the engine, `validate`, the run view and the pull request's risk diff.
 */
import type { ApprovalSpec, Config, Effect, Flow, Step, WaitSpec } from "../flow/types.js";
import { effectUnder, requiresApproval } from "../policy/effects.js";

/** The approval a `wait` step asks for, or undefined for any other step. */
export function approvalSpecOf(step: Step): ApprovalSpec | undefined {
  if (step.kind !== "wait") return undefined;
  const wait = step.params as WaitSpec | null;
  return wait?.approval ?? undefined;
}

/** The approval steps that would cover the step at `index`, nearest first (any one approved covers it). */
export function coveringApprovals(flow: Flow, index: number): Step[] {
  const target = flow.steps[index];
  if (!target) return [];
  const out: Step[] = [];
  let reachedNext = false;
  for (let i = index - 1; i >= 0; i--) {
    const step = flow.steps[i] as Step;
    const spec = approvalSpecOf(step);
    if (!spec) continue;
    if (Array.isArray(spec.covers)) {
      if (spec.covers.includes(target.id)) out.push(step);
    } else if (!reachedNext) {
      out.push(step);
    }
    // Only the nearest approval step covers by position; further ones only by their lists.
    reachedNext = true;
  }
  return out;
}

export type Cover =
  /** Not a write: nothing to cover. */
  | { kind: "none" }
  /** A write the policy never gates (auto_approve, or not in require_approval). */
  | { kind: "auto" }
  /** A write covered by these approval steps (any one approved); where none is, its own implicit gate. */
  | { kind: "approval"; by: string[] }
  /** A write gated by the implicit gate the policy puts before it. */
  | { kind: "implicit" };

/** How a step's write is covered, from its (raw or evaluated) parameters and the config. */
export function coverOf(flow: Flow, index: number, config: Config, effect?: Effect): Cover {
  const step = flow.steps[index];
  if (!step) return { kind: "none" };
  const eff = effect ?? effectUnder(step, config);
  if (eff !== "write") return { kind: "none" };
  const gated = requiresApproval(step, eff, config.policy);
  if (!gated) return { kind: "auto" };
  const by = coveringApprovals(flow, index).map((s) => s.id);
  return by.length ? { kind: "approval", by } : { kind: "implicit" };
}

/** One line of text for a cover, as `validate`, the run view and the risk diff show it. */
export function describeCover(cover: Cover): string {
  switch (cover.kind) {
    case "none":
      return "not a write";
    case "auto":
      return "auto-approved by policy";
    case "approval":
      return `covered by ${cover.by.map((b) => `'${b}'`).join(" or ")}`;
    case "implicit":
      return "its own gate";
  }
}
