/**
 * decide(state, facts) → the next turn of a run: events to append, one step attempt to
 * execute, a wait until a time or a signal, or nothing (the run ended). Pure: the time is a
 * fact handed in, and the shell carries the turn out and asks again.
 */
import { evaluateCondition, evaluateDeep, evaluateTemplate, type ExprContext } from "../expr/expressions.js";
import { parseDuration } from "../flow/duration.js";
import type { ApprovalSpec, Approvers, Effect, Step, WaitSpec } from "../flow/types.js";
import { effectUnder, requiresApproval } from "../policy/effects.js";
import { exprContext } from "./context.js";
import { coveringApprovals } from "./coverage.js";
import type { GateInfo, JournalEvent, StepErrorInfo } from "./events.js";
import { digestMatches, gateDigest, quorumOf } from "./gates.js";
import { nextAttemptAt } from "./retry.js";
import { isFinal, type RunState, type RunStatus, type StepState } from "./state.js";

export type Turn =
  | { kind: "append"; events: JournalEvent[] }
  | {
      kind: "execute";
      step: Step;
      attempt: number;
      key: string;
      effect: Effect;
      params: Record<string, unknown>;
      timeoutMs?: number;
    }
  | { kind: "wait"; status: Extract<RunStatus, "queued" | "waiting" | "running">; wakeAt: number | null }
  | { kind: "done"; status: Extract<RunStatus, "succeeded" | "failed" | "cancelled" | "timed_out"> };

export interface Facts {
  now: number;
  /** Another run of the same concurrency group is active (the shell looks). */
  groupBusy?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

function errorInfo(code: string, message: string, retryable = false): StepErrorInfo {
  return { code, message, retryable };
}

function complete(
  now: number,
  status: "succeeded" | "failed" | "cancelled" | "timed_out",
  outputs: Record<string, unknown> = {},
  error?: StepErrorInfo,
): Turn {
  return { kind: "append", events: [{ type: "run_completed", at: now, status, outputs, ...(error ? { error } : {}) }] };
}

export function decide(state: RunState, facts: Facts): Turn {
  const { now } = facts;
  if (state.completed) return { kind: "done", status: state.completed.status };
  if (state.cancelRequested) {
    return complete(now, "cancelled", {}, errorInfo("CANCELLED", `cancelled by ${state.cancelRequested.by}${state.cancelRequested.reason ? `: ${state.cancelRequested.reason}` : ""}`));
  }
  if (state.startedAt === undefined) {
    if (facts.groupBusy && state.flow.concurrency) {
      if (state.flow.concurrency.on_conflict === "cancel_new") {
        return complete(now, "cancelled", {}, errorInfo("CONCURRENCY", "another run of this concurrency group is active"));
      }
      return { kind: "wait", status: "queued", wakeAt: null };
    }
    return { kind: "append", events: [{ type: "run_started", at: now }] };
  }
  const deadline = state.flow.timeout ? state.startedAt + parseDuration(state.flow.timeout) : null;
  if (deadline !== null && now >= deadline) {
    return complete(now, "timed_out", {}, errorInfo("RUN_TIMEOUT", `the run passed its timeout of ${state.flow.timeout}`));
  }

  // Every step before the frontier is done with (the fold keeps it): start there.
  const defs = state.flow.steps;
  for (let index = state.frontier; index < defs.length; index++) {
    const def = defs[index] as Step;
    const s = state.steps[def.id];
    if (!s) continue;
    if (isFinal(def, s)) {
      if (s.status === "failed" && def.on_error !== "continue") {
        return complete(now, "failed", {}, s.error ?? errorInfo("STEP_FAILED", `step ${def.id} failed`));
      }
      continue;
    }
    const turn = decideStep(state, def, s, index, now);
    if (turn.kind === "wait" && deadline !== null) {
      return { ...turn, wakeAt: turn.wakeAt === null ? deadline : Math.min(turn.wakeAt, deadline) };
    }
    return turn;
  }

  // Every step is settled: evaluate the outputs and finish.
  try {
    const ctx = exprContext(state);
    const outputs: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(state.flow.outputs ?? {})) outputs[k] = evaluateTemplate(v, ctx);
    return complete(now, "succeeded", outputs);
  } catch (e) {
    return complete(now, "failed", {}, errorInfo("EXPR_EVAL", `the flow's outputs could not be evaluated: ${message(e)}`));
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function decideStep(state: RunState, def: Step, s: StepState, index: number, now: number): Turn {
  // A failed attempt waiting for its retry.
  if (s.status === "failed" && s.lastFailure) {
    const at = nextAttemptAt(def.retry, s.lastFailure) as number;
    if (now < at) return { kind: "wait", status: "running", wakeAt: at };
    return execute(state, def, s, index, s.attempts + 1, now);
  }
  // An attempt started and never finished: the worker that ran it is gone. A write's outcome is
  // unknown, unless its effect commits with its result (atomic): then it did nothing.
  if (s.inFlight && !s.gate) {
    if (s.effect === "write" && !s.inFlight.atomic) {
      return {
        kind: "append",
        events: [
          {
            type: "gate_opened",
            at: now,
            step: def.id,
            gate: unknownOutcomeGate(state, def, s),
          },
        ],
      };
    }
    return execute(state, def, s, index, s.attempts + 1, now);
  }
  if (s.gate) return decideGate(def, s, now);
  if (s.status === "waiting") return decideWait(state, def, s, now);

  // pending: first time here (or again after a retry request / unknown-outcome retry).
  const ctx = exprContext(state);
  if (def.if !== undefined && s.attempts === 0) {
    let pass: boolean;
    try {
      pass = evaluateCondition(def.if, ctx);
    } catch (e) {
      return { kind: "append", events: [{ type: "step_failed", at: now, step: def.id, attempt: 0, error: errorInfo("EXPR_EVAL", `if: ${message(e)}`) }] };
    }
    if (!pass) return { kind: "append", events: [{ type: "step_skipped", at: now, step: def.id }] };
  }
  if (def.kind === "sleep") {
    let until: number;
    try {
      const p = evaluateDeep(def.params, ctx);
      until = isObject(p) && typeof p.until === "string" ? Date.parse(p.until) : now + parseDuration(String(p));
      if (Number.isNaN(until)) throw new Error(`'${String(isObject(p) ? p.until : p)}' is not an ISO time`);
    } catch (e) {
      return { kind: "append", events: [{ type: "step_failed", at: now, step: def.id, attempt: 0, error: errorInfo("EXPR_EVAL", message(e)) }] };
    }
    return { kind: "append", events: [{ type: "timer_started", at: now, step: def.id, until }] };
  }
  if (def.kind === "wait") {
    const wait = def.params as WaitSpec;
    if (wait.approval) return openApproval(state, def, wait.approval, now);
    const kind = wait.callback ? "callback" : "event";
    const timeout = (wait.callback ?? wait.event)?.timeout ?? def.timeout;
    return {
      kind: "append",
      events: [{ type: "wait_started", at: now, step: def.id, wait: kind, deadline: timeout ? now + parseDuration(timeout) : null }],
    };
  }
  // An executable step: is it gated?
  let params: Record<string, unknown>;
  try {
    params = evaluateParams(def, ctx);
  } catch (e) {
    return { kind: "append", events: [{ type: "step_failed", at: now, step: def.id, attempt: s.attempts, error: errorInfo("EXPR_EVAL", message(e)) }] };
  }
  const effect = effectOfStep(state, def, s, params);
  if (!s.gateApproved && !s.retryUnknown && requiresApproval({ kind: def.kind, params }, effect, state.config.policy) && !coveredBy(state, index)) {
    return { kind: "append", events: [{ type: "gate_opened", at: now, step: def.id, gate: implicitGate(state, def, params) }] };
  }
  return execute(state, def, s, index, s.attempts + 1, now, params, effect);
}

/** A step's effect under the run's config, raised to `write` where the step was found to write at run time. */
function effectOfStep(state: RunState, def: Step, s: StepState, params: Record<string, unknown>): Effect {
  return s.reclassified ?? effectUnder({ kind: def.kind, params }, state.config);
}

function evaluateParams(def: Step, ctx: ExprContext): Record<string, unknown> {
  const p = evaluateDeep(def.params, ctx);
  return isObject(p) ? p : { value: p };
}

function execute(state: RunState, def: Step, s: StepState, index: number, attempt: number, now: number, params?: Record<string, unknown>, effect?: Effect): Turn {
  let p = params;
  try {
    p ??= evaluateParams(def, exprContext(state));
  } catch (e) {
    return { kind: "append", events: [{ type: "step_failed", at: now, step: def.id, attempt: s.attempts, error: errorInfo("EXPR_EVAL", message(e)) }] };
  }
  const eff = effect ?? effectOfStep(state, def, s, p);
  return {
    kind: "execute",
    step: def,
    attempt,
    key: `${state.id}:${def.id}:${attempt}`,
    effect: eff,
    params: withReviewedHead(state, def, s, index, p),
    ...(def.timeout ? { timeoutMs: parseDuration(def.timeout) } : {}),
  };
}

/** The approved approval step that covers the step at `index` (SPEC §4), if any. */
function coveredBy(state: RunState, index: number): StepState | undefined {
  for (const d of coveringApprovals(state.flow, index)) {
    const s = state.steps[d.id];
    if (s?.status === "succeeded" && s.outputs?.decision === "approved") return s;
  }
  return undefined;
}

/**
 * A merge of the pull request whose head the covering approval reviewed passes that head's SHA,
 * so GitHub refuses to merge anything pushed since (SPEC §4). The step's own `sha` wins.
 */
function withReviewedHead(state: RunState, def: Step, s: StepState, index: number, params: Record<string, unknown>): Record<string, unknown> {
  const merge = def.kind === "github" && isObject(params.merge_pull_request) ? params.merge_pull_request : undefined;
  if (!merge || merge.sha !== undefined) return params;
  const head = (s.passedGate ?? coveredBy(state, index)?.gate)?.info.head;
  if (!head || head.pull_request !== Number(merge.number)) return params;
  return { ...params, merge_pull_request: { ...merge, sha: head.sha } };
}

/** A set of approvers as a gate records it: permission `write` when it names nobody. */
function approversOf(src: Approvers): GateInfo["approvers"] {
  return {
    ...(src.users ? { users: src.users } : {}),
    ...(src.teams ? { teams: src.teams } : {}),
    ...(src.permission ? { permission: src.permission } : !src.users && !src.teams ? { permission: "write" } : {}),
    min: src.min ?? 1,
  };
}

function openApproval(state: RunState, def: Step, spec: ApprovalSpec, now: number): Turn {
  let evaluated: ApprovalSpec;
  try {
    evaluated = evaluateDeep(spec, exprContext(state)) as ApprovalSpec;
  } catch (e) {
    return { kind: "append", events: [{ type: "step_failed", at: now, step: def.id, attempt: 0, error: errorInfo("EXPR_EVAL", message(e)) }] };
  }
  const evidence = evaluated.evidence ?? [];
  const timeout = evaluated.timeout ?? def.timeout;
  const pr = Number(evaluated.pull_request);
  const gate: GateInfo = {
    kind: "approval",
    title: evaluated.title ?? `Approve step ${def.id}?`,
    ...(evaluated.summary ? { summary: String(evaluated.summary) } : {}),
    digest: gateDigest({ sha: state.release.sha, runId: state.id, step: def.id, evidence }),
    approvers: approversOf(evaluated.approvers ?? state.config.policy.approvers),
    floor: approversOf(state.config.policy.approvers),
    allow_self_approval: evaluated.allow_self_approval === true && state.config.policy.allow_self_approval === true,
    deadline: timeout ? now + parseDuration(timeout) : null,
    escalate: (evaluated.escalate ?? []).map((e) => ({ after_ms: parseDuration(e.after), approvers: e.approvers })),
    on_timeout: evaluated.on_timeout ?? "fail",
    evidence,
    ...(Number.isInteger(pr) && pr > 0 ? { pull_request: pr } : {}),
  };
  return { kind: "append", events: [{ type: "gate_opened", at: now, step: def.id, gate }] };
}

function implicitGate(state: RunState, def: Step, params: Record<string, unknown>): GateInfo {
  const evidence = [{ step: def.id, kind: def.kind, params }];
  const merge = def.kind === "github" && isObject(params.merge_pull_request) ? Number(params.merge_pull_request.number) : NaN;
  return {
    kind: "implicit",
    title: `Allow ${def.kind} step '${def.id}' to write?`,
    summary: `Policy requires an approval before this ${def.kind} step changes state.`,
    digest: gateDigest({ sha: state.release.sha, runId: state.id, step: def.id, evidence }),
    approvers: approversOf(state.config.policy.approvers),
    floor: approversOf(state.config.policy.approvers),
    allow_self_approval: false,
    deadline: null,
    escalate: [],
    on_timeout: "fail",
    evidence,
    // A merge's own gate names the pull request it merges: its reviews decide it, at the head they saw.
    ...(Number.isInteger(merge) && merge > 0 ? { pull_request: merge } : {}),
  };
}

function unknownOutcomeGate(state: RunState, def: Step, s: StepState): GateInfo {
  const evidence = [{ step: def.id, attempt: s.inFlight?.attempt, key: s.inFlight?.key, started_at: s.inFlight?.at }];
  return {
    kind: "unknown_outcome",
    title: `Step '${def.id}' may or may not have run: retry it or skip it?`,
    summary: `Attempt ${s.inFlight?.attempt} of this write step started and its result was never recorded (the worker stopped). Approve to run it again, reject to skip it.`,
    digest: gateDigest({ sha: state.release.sha, runId: state.id, step: def.id, evidence }),
    approvers: approversOf(state.config.policy.approvers),
    floor: approversOf(state.config.policy.approvers),
    // Running a write again is a change of state like any other: the same self-approval rule.
    allow_self_approval: state.config.policy.allow_self_approval === true,
    deadline: null,
    escalate: [],
    on_timeout: "fail",
    evidence,
  };
}

export interface Tally {
  approvedBy: string[];
  rejectedBy?: { login: string; comment?: string };
  stale: number;
  min: number;
}

export function tally(s: StepState): Tally {
  const gate = s.gate;
  if (!gate) return { approvedBy: [], stale: 0, min: 0 };
  const approvedBy: string[] = [];
  let rejectedBy: Tally["rejectedBy"];
  let stale = 0;
  for (const a of gate.approvals) {
    if (!digestMatches(a.digest, gate.info.digest)) {
      stale++;
      continue;
    }
    if (a.decision === "reject") rejectedBy ??= { login: a.login, ...(a.comment ? { comment: a.comment } : {}) };
    else if (!approvedBy.includes(a.login.toLowerCase())) approvedBy.push(a.login.toLowerCase());
  }
  return { approvedBy, ...(rejectedBy ? { rejectedBy } : {}), stale, min: quorumOf(gate.info, gate.level) };
}

function decideGate(def: Step, s: StepState, now: number): Turn {
  const gate = s.gate!;
  const t = tally(s);
  const approvals = gate.approvals.filter((a) => a.decision === "approve" && digestMatches(a.digest, gate.info.digest));
  const firstOf = new Map<string, (typeof approvals)[number]>();
  for (const a of approvals) if (!firstOf.has(a.login.toLowerCase())) firstOf.set(a.login.toLowerCase(), a);
  const approvers = [...firstOf.values()].map((a) => ({ login: a.login, via: a.via, at: new Date(a.at).toISOString() }));

  if (gate.info.kind === "unknown_outcome") {
    const decision = t.rejectedBy ? "skip" : t.approvedBy.length >= 1 ? "retry" : undefined;
    if (!decision) return { kind: "wait", status: "waiting", wakeAt: null };
    const by = t.rejectedBy?.login ?? t.approvedBy[0] ?? "unknown";
    return { kind: "append", events: [{ type: "unknown_outcome_resolved", at: now, step: def.id, attempt: s.inFlight?.attempt ?? s.attempts, action: decision, by }] };
  }
  if (t.rejectedBy) {
    return {
      kind: "append",
      events: [{ type: "step_failed", at: now, step: def.id, attempt: s.attempts, error: errorInfo("APPROVAL_REJECTED", `rejected by ${t.rejectedBy.login}${t.rejectedBy.comment ? `: ${t.rejectedBy.comment}` : ""}`) }],
    };
  }
  if (t.approvedBy.length >= t.min) {
    const comment = approvals.map((a) => a.comment).filter(Boolean).join("\n");
    if (gate.info.kind === "implicit") {
      return { kind: "append", events: [{ type: "gate_passed", at: now, step: def.id, approvers }] };
    }
    return { kind: "append", events: [{ type: "step_succeeded", at: now, step: def.id, attempt: 0, outputs: { decision: "approved", approvers, comment } }] };
  }
  // Escalations and the deadline.
  const nextLevel = gate.level + 1;
  const escalation = gate.info.escalate[gate.level];
  const escalateAt = escalation ? gate.openedAt + escalation.after_ms : null;
  if (escalateAt !== null && now >= escalateAt) {
    return { kind: "append", events: [{ type: "gate_escalated", at: now, step: def.id, level: nextLevel }] };
  }
  if (gate.info.deadline !== null && now >= gate.info.deadline) {
    switch (gate.info.on_timeout) {
      case "cancel":
        return complete(now, "cancelled", {}, errorInfo("APPROVAL_TIMEOUT", `no decision on step ${def.id} before its deadline`));
      case "continue":
        return { kind: "append", events: [{ type: "step_succeeded", at: now, step: def.id, attempt: 0, outputs: { decision: "timed_out", approvers, comment: "" } }] };
      case "fail":
        return { kind: "append", events: [{ type: "step_failed", at: now, step: def.id, attempt: 0, error: errorInfo("APPROVAL_TIMEOUT", `no decision on step ${def.id} before its deadline`) }] };
    }
  }
  const wakes = [escalateAt, gate.info.deadline].filter((x): x is number => x !== null);
  return { kind: "wait", status: "waiting", wakeAt: wakes.length ? Math.min(...wakes) : null };
}

function decideWait(state: RunState, def: Step, s: StepState, now: number): Turn {
  if (s.waitKind === "sleep") {
    if (s.until !== undefined && s.until !== null && now < s.until) return { kind: "wait", status: "waiting", wakeAt: s.until };
    return { kind: "append", events: [{ type: "step_succeeded", at: now, step: def.id, attempt: 0, outputs: {} }] };
  }
  const arrived = s.waitKind === "callback" ? def.id in state.callbackBodies : def.id in state.eventPayloads;
  if (arrived) {
    const outputs = s.waitKind === "callback" ? { body: state.callbackBodies[def.id] } : { payload: state.eventPayloads[def.id] };
    return { kind: "append", events: [{ type: "step_succeeded", at: now, step: def.id, attempt: 0, outputs }] };
  }
  if (s.until !== undefined && s.until !== null && now >= s.until) {
    return { kind: "append", events: [{ type: "step_failed", at: now, step: def.id, attempt: 0, error: errorInfo("WAIT_TIMEOUT", `no ${s.waitKind} arrived for step ${def.id} before its timeout`) }] };
  }
  return { kind: "wait", status: "waiting", wakeAt: s.until ?? null };
}
