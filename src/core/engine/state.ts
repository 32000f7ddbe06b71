/**
 * fold(journal) → state: the one reading of a run's events. Pure and total: an event that
 * does not apply (a result after the run ended, a second callback) changes nothing.
 *
 * The fold is incremental: `foldInto` applies the events that follow the ones a state was
 * folded from, so a runtime that appends keeps its state and pays for each event once.
 */
import type { Config, Effect, Flow, Step } from "../flow/types.js";
import type { ApprovalSignal, GateInfo, JournalEvent, RefusalReason, Release, StepErrorInfo, Trigger } from "./events.js";
import { nextAttemptAt } from "./retry.js";

export type RunStatus = "queued" | "running" | "waiting" | "succeeded" | "failed" | "cancelled" | "timed_out";
export type StepStatus = "pending" | "running" | "waiting" | "succeeded" | "failed" | "skipped" | "cancelled";

export interface Approval {
  login: string;
  via: ApprovalSignal["via"];
  at: number;
  decision: "approve" | "reject";
  digest?: string;
  comment?: string;
}

export interface GateState {
  info: GateInfo;
  openedAt: number;
  level: number;
  approvals: Approval[];
  /** Decisions that did not count, for the record (SPEC §4: refused decisions are journaled). */
  refused: (Omit<Approval, "comment"> & { reason: RefusalReason; message: string })[];
}

export interface StepState {
  id: string;
  status: StepStatus;
  effect?: string;
  /** Attempts started so far. */
  attempts: number;
  /**
   * The attempt started and not finished (a crash leaves one behind). `atomic`: its effect
   * commits with its result, so an attempt left behind did nothing.
   */
  inFlight?: { attempt: number; key: string; at: number; atomic?: true };
  lastFailure?: { attempt: number; at: number; error: StepErrorInfo };
  outputs?: Record<string, unknown>;
  error?: StepErrorInfo;
  startedAt?: number;
  finishedAt?: number;
  /** A sleep's wake-up, or a callback/event wait's deadline. */
  until?: number | null;
  waitKind?: "sleep" | "callback" | "event";
  gate?: GateState;
  /** An implicit gate before this write step was approved. */
  gateApproved?: boolean;
  /** The implicit gate this step passed, kept for the record. */
  passedGate?: GateState;
  /** A human asked to retry the attempt whose outcome was unknown. */
  retryUnknown?: boolean;
  /** The step was found to write at run time: its effect from then on, whatever its parameters say. */
  reclassified?: "write";
  /** The step failed for good, or succeeded: its outcome is settled. */
  settled: boolean;
}

export interface RunState {
  id: string;
  flow: Flow;
  config: Config;
  release: Release;
  repo: string;
  inputs: Record<string, unknown>;
  trigger: Trigger;
  callbacks: Record<string, string>;
  runUrl?: string;
  createdAt: number;
  startedAt?: number;
  /** 1, plus one per `runs retry`. */
  attempt: number;
  steps: Record<string, StepState>;
  /** Callback bodies and event payloads that arrived, by step, first one wins. */
  callbackBodies: Record<string, unknown>;
  eventPayloads: Record<string, unknown>;
  cancelRequested?: { by: string; reason?: string; at: number };
  completed?: { status: "succeeded" | "failed" | "cancelled" | "timed_out"; outputs: Record<string, unknown>; error?: StepErrorInfo; at: number };
  /**
   * The index in `flow.steps` of the first step the run cannot move past yet (not settled, or
   * failed for good without `on_error: continue`); every step before it is done with. `decide`
   * starts there instead of walking the whole flow on every turn. Derived, never journaled.
   */
  frontier: number;
}

/** Whether a step's outcome is settled for the run to move on (success, skip or final failure). */
export function isFinal(def: Step, s: StepState): boolean {
  if (s.settled) return true;
  if (s.status !== "failed" || !s.lastFailure) return false;
  return nextAttemptAt(def.retry, s.lastFailure) === null;
}

/** Moves the frontier past the steps the run is done with. */
function advanceFrontier(state: RunState): void {
  const defs = state.flow.steps;
  while (state.frontier < defs.length) {
    const def = defs[state.frontier] as Step;
    const s = state.steps[def.id];
    if (s && (!isFinal(def, s) || (s.status === "failed" && def.on_error !== "continue"))) return;
    state.frontier++;
  }
}

function initialStep(step: Step): StepState {
  return { id: step.id, status: "pending", attempts: 0, settled: false };
}

export function fold(events: readonly JournalEvent[]): RunState {
  const first = events[0];
  if (!first || first.type !== "run_created") throw new Error("a journal starts with run_created");
  const state: RunState = {
    id: first.run_id,
    flow: first.flow,
    config: first.config,
    release: first.release,
    repo: first.repo,
    inputs: first.inputs,
    trigger: first.trigger,
    callbacks: first.callbacks,
    ...(first.run_url ? { runUrl: first.run_url } : {}),
    createdAt: first.at,
    attempt: 1,
    steps: Object.fromEntries(first.flow.steps.map((s) => [s.id, initialStep(s)])),
    callbackBodies: {},
    eventPayloads: {},
    frontier: 0,
  };
  advanceFrontier(state);
  for (let i = 1; i < events.length; i++) apply(state, events[i] as JournalEvent);
  return state;
}

/**
 * Applies `events`, which follow the ones `state` was folded from, to `state` in place and
 * returns it: `foldInto(fold(a), b)` is `fold([...a, ...b])`.
 */
export function foldInto(state: RunState, events: readonly JournalEvent[]): RunState {
  for (const e of events) apply(state, e);
  return state;
}

function apply(state: RunState, e: JournalEvent): void {
  applyEvent(state, e);
  advanceFrontier(state);
}

function applyEvent(state: RunState, e: JournalEvent): void {
  // Signals that arrive early are kept whatever the run's state (race-free waits).
  if (e.type === "callback_received") {
    if (!(e.step in state.callbackBodies)) state.callbackBodies[e.step] = e.body;
    return;
  }
  if (e.type === "event_received") {
    if (!(e.step in state.eventPayloads)) state.eventPayloads[e.step] = e.payload;
    return;
  }
  if (e.type === "run_retry_requested") {
    if (!state.completed || state.completed.status === "succeeded") return;
    state.completed = undefined;
    state.cancelRequested = undefined;
    state.attempt += 1;
    // The run's timeout counts again from the retry, and the steps it runs again show fresh times.
    if (state.startedAt !== undefined) state.startedAt = e.at;
    for (const s of Object.values(state.steps)) {
      if (!s.settled || s.status === "failed") {
        Object.assign(s, { status: "pending", settled: false, gate: undefined, gateApproved: undefined, passedGate: undefined, error: undefined, lastFailure: undefined, inFlight: undefined, until: undefined, waitKind: undefined, outputs: undefined, startedAt: undefined, finishedAt: undefined });
      }
    }
    state.frontier = 0;
    return;
  }
  if (state.completed) return;
  const step = "step" in e ? state.steps[e.step] : undefined;
  switch (e.type) {
    case "run_created":
      return;
    case "run_started":
      state.startedAt ??= e.at;
      return;
    case "step_skipped":
      if (step) Object.assign(step, { status: "skipped", settled: true, finishedAt: e.at, outputs: {} });
      return;
    case "step_started":
      if (!step) return;
      step.attempts = Math.max(step.attempts, e.attempt);
      step.inFlight = { attempt: e.attempt, key: e.key, at: e.at, ...(e.atomic ? { atomic: true as const } : {}) };
      step.status = "running";
      step.effect = e.effect;
      step.startedAt ??= e.at;
      return;
    case "step_succeeded":
      if (!step || step.settled) return;
      Object.assign(step, { status: "succeeded", settled: true, outputs: e.outputs, finishedAt: e.at, inFlight: undefined });
      return;
    case "step_reclassified":
      if (!step || step.settled || step.inFlight?.attempt !== e.attempt) return;
      Object.assign(step, { status: "pending", inFlight: undefined, reclassified: e.effect, effect: e.effect });
      return;
    case "step_failed":
      if (!step || step.settled) return;
      step.inFlight = undefined;
      step.status = "failed";
      step.lastFailure = { attempt: e.attempt, at: e.at, error: e.error };
      step.error = e.error;
      step.finishedAt = e.at;
      step.retryUnknown = false;
      return;
    case "timer_started":
      if (!step) return;
      Object.assign(step, { status: "waiting", until: e.until, waitKind: "sleep", startedAt: e.at });
      return;
    case "wait_started":
      if (!step) return;
      Object.assign(step, { status: "waiting", until: e.deadline, waitKind: e.wait, startedAt: e.at });
      return;
    case "gate_opened":
      if (!step) return;
      step.gate = { info: e.gate, openedAt: e.at, level: 0, approvals: [], refused: [] };
      step.status = "waiting";
      step.startedAt ??= e.at;
      return;
    case "approval_received": {
      if (!step?.gate) return;
      const { type: _t, step: _s, at, login, via, decision, digest, comment } = e;
      step.gate.approvals.push({ login, via, at, decision, ...(digest ? { digest } : {}), ...(comment ? { comment } : {}) });
      return;
    }
    case "approval_refused":
      step?.gate?.refused.push({ login: e.login, via: e.via, at: e.at, decision: e.decision, reason: e.reason, message: e.message, ...(e.digest ? { digest: e.digest } : {}) });
      return;
    case "gate_passed":
      if (!step?.gate) return;
      Object.assign(step, { passedGate: step.gate, gate: undefined, gateApproved: true, status: "pending" });
      return;
    case "gate_escalated":
      if (step?.gate) step.gate.level = Math.max(step.gate.level, e.level);
      return;
    case "unknown_outcome_resolved":
      if (!step) return;
      step.gate = undefined;
      step.inFlight = undefined;
      if (e.action === "skip") Object.assign(step, { status: "skipped", settled: true, finishedAt: e.at, outputs: {} });
      else Object.assign(step, { status: "pending", retryUnknown: true });
      return;
    case "run_cancel_requested":
      state.cancelRequested ??= { by: e.by, ...(e.reason ? { reason: e.reason } : {}), at: e.at };
      return;
    case "run_completed":
      state.completed = { status: e.status, outputs: e.outputs, ...(e.error ? { error: e.error } : {}), at: e.at };
      for (const s of Object.values(state.steps)) {
        if (!s.settled && (s.status === "running" || s.status === "waiting")) s.status = "cancelled";
      }
      return;
    default:
      return;
  }
}

/** The effect a step was classified with when it started, else undefined. */
export function stepEffect(state: RunState, id: string): Effect | undefined {
  return state.steps[id]?.effect as Effect | undefined;
}
