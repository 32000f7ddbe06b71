/**
 * Pure helpers for engine tests: a run_created event from flow YAML, and a loop that carries
 * turns out with results the test scripts (the core needs no mocks: it does no I/O).
 */
import { decide, type Facts, type Turn } from "../../../src/core/engine/decide.js";
import type { JournalEvent, StepErrorInfo, Trigger } from "../../../src/core/engine/events.js";
import { fold, type RunState } from "../../../src/core/engine/state.js";
import type { Config } from "../../../src/core/flow/types.js";
import { DEFAULT_CONFIG, normaliseConfig, validateFlow } from "../../../src/core/flow/validate.js";
import { parse } from "yaml";

export const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

export function created(
  flowYaml: string,
  opts: { inputs?: Record<string, unknown>; config?: Config | string; trigger?: Partial<Trigger>; sha?: string; runId?: string } = {},
): JournalEvent {
  const config = typeof opts.config === "string" ? normaliseConfig(parse(opts.config) as Record<string, unknown>) : (opts.config ?? DEFAULT_CONFIG);
  const v = validateFlow(flowYaml, { file: "test.yml", config });
  if (!v.flow) throw new Error(`test flow is invalid: ${JSON.stringify(v.diagnostics)}`);
  const callbacks = Object.fromEntries(
    v.flow.steps.filter((s) => s.kind === "wait" && (s.params as { callback?: unknown }).callback).map((s) => [s.id, `http://sluice.test/callbacks/tok-${s.id}`]),
  );
  return {
    type: "run_created",
    at: T0,
    run_id: opts.runId ?? "run1",
    flow: v.flow,
    config,
    release: { sha: opts.sha ?? "a".repeat(40), ref: "main", kind: "live" },
    repo: "acme/widgets",
    inputs: opts.inputs ?? {},
    trigger: { type: "manual", actor: "alice", ...opts.trigger },
    callbacks,
  };
}

export type Outcome = { outputs: Record<string, unknown> } | { error: StepErrorInfo } | "crash";

/** What an execute turn yields: scripted per step and attempt; default: success with no outputs. */
export type Script = (turn: Extract<Turn, { kind: "execute" }>) => Outcome;

export interface Sim {
  events: JournalEvent[];
  state: RunState;
  turn: Turn;
  executed: string[];
  now: number;
}

/**
 * Runs decide → apply until the run waits, ends, or the script crashes an attempt (the
 * step_started stays without a result, as after a SIGKILL).
 */
export function run(events: JournalEvent[], opts: { now?: number; script?: Script; facts?: Omit<Facts, "now">; maxTurns?: number } = {}): Sim {
  const log = [...events];
  const executed: string[] = [];
  let now = opts.now ?? T0;
  for (let i = 0; i < (opts.maxTurns ?? 500); i++) {
    const state = fold(log);
    const turn = decide(state, { now, ...opts.facts });
    if (turn.kind === "append") {
      log.push(...turn.events);
      continue;
    }
    if (turn.kind === "execute") {
      log.push({ type: "step_started", at: now, step: turn.step.id, attempt: turn.attempt, key: turn.key, effect: turn.effect });
      executed.push(`${turn.step.id}#${turn.attempt}`);
      const out = opts.script ? opts.script(turn) : { outputs: {} };
      if (out === "crash") return { events: log, state: fold(log), turn, executed, now };
      log.push(
        "error" in out
          ? { type: "step_failed", at: now, step: turn.step.id, attempt: turn.attempt, error: out.error }
          : { type: "step_succeeded", at: now, step: turn.step.id, attempt: turn.attempt, outputs: out.outputs },
      );
      continue;
    }
    return { events: log, state: fold(log), turn, executed, now };
  }
  throw new Error("the run did not settle");
}

/** Continues a simulation at a later time, optionally with signal events appended first. */
export function resume(sim: Sim, opts: { at?: number; signals?: JournalEvent[]; script?: Script; facts?: Omit<Facts, "now"> } = {}): Sim {
  const now = opts.at ?? sim.now;
  // A decision names the digest it saw: by default the gate's current one, as the shell records it.
  const state = fold(sim.events);
  const signals = (opts.signals ?? []).map((e) =>
    e.type === "approval_received" && e.digest === undefined ? { ...e, digest: state.steps[e.step]?.gate?.info.digest ?? "" } : e,
  );
  const events = [...sim.events, ...signals];
  const next = run(events, { now, ...(opts.script ? { script: opts.script } : {}), ...(opts.facts ? { facts: opts.facts } : {}) });
  return { ...next, executed: [...sim.executed, ...next.executed] };
}

export function approval(step: string, login: string, at: number, extra: Partial<Extract<JournalEvent, { type: "approval_received" }>> = {}): JournalEvent {
  return { type: "approval_received", at, step, login, via: "cli", decision: "approve", ...extra };
}

export const fail = (code: string, retryable: boolean, retryAfterMs?: number): Outcome => ({
  error: { code, message: `${code} happened`, retryable, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
});
