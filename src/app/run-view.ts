/**
 * The public shape of a run (SPEC §6 `kind: Run`): the same for the CLI, the HTTP API and the
 * check-run summary.
 */
import { coverOf, describeCover } from "../core/engine/coverage.js";
import type { GateInfo, JournalEvent } from "../core/engine/events.js";
import { REDACTED } from "../core/redact.js";
import type { Effect } from "../core/flow/types.js";
import { effectUnder } from "../core/policy/effects.js";
import type { RunState } from "../core/engine/state.js";
import { tally } from "../core/engine/decide.js";
import type { RunRecord } from "../ports/run-store.js";
import { openGates } from "./signals.js";

export interface StepView {
  id: string;
  name?: string;
  kind: string;
  effect: string;
  status: string;
  attempts: number;
  started_at?: string;
  finished_at?: string;
  duration_ms?: number;
  outputs?: Record<string, unknown>;
  error?: { code: string; message: string };
  /** For a write step: what covers it, in words. */
  covered_by?: string;
}

export interface GateView {
  step: string;
  kind: string;
  title: string;
  digest: string;
  approvers: { users?: string[]; teams?: string[]; permission?: string };
  min: number;
  approvals: { login: string; via: string; at: string }[];
  deadline: string | null;
  floor?: { users?: string[]; teams?: string[]; permission?: string };
  head?: { pull_request: number; sha: string };
  refused: { login: string; via: string; decision: string; reason: string; message: string; at: string }[];
}

export interface RunView {
  id: string;
  flow: string;
  repo: string;
  status: string;
  release: { sha: string; ref: string; kind: string };
  trigger: { type: string; actor: string };
  inputs: Record<string, unknown>;
  outputs: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  steps: StepView[];
  gate?: GateView;
  error?: { code: string; message: string };
  url?: string;
}

function approversView(a: GateInfo["approvers"] | NonNullable<GateInfo["floor"]>): GateView["approvers"] {
  return { ...(a.users ? { users: a.users } : {}), ...(a.teams ? { teams: a.teams } : {}), ...(a.permission ? { permission: a.permission } : {}) };
}

const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

export function runView(record: RunRecord, state: RunState): RunView {
  const steps = state.flow.steps.map((def, index): StepView => {
    const s = state.steps[def.id]!;
    const effect = (s.effect ?? effectUnder(def, state.config)) as Effect;
    const cover = coverOf(state.flow, index, state.config, effect);
    return {
      id: def.id,
      ...(def.name ? { name: def.name } : {}),
      kind: def.kind,
      effect,
      status: s.status,
      attempts: s.attempts,
      ...(s.startedAt !== undefined ? { started_at: iso(s.startedAt) } : {}),
      ...(s.finishedAt !== undefined ? { finished_at: iso(s.finishedAt) } : {}),
      ...(s.startedAt !== undefined && s.finishedAt !== undefined ? { duration_ms: s.finishedAt - s.startedAt } : {}),
      ...(s.outputs && s.status === "succeeded" ? { outputs: s.outputs } : {}),
      ...(s.error && s.status === "failed" ? { error: { code: s.error.code, message: s.error.message } } : {}),
      ...(cover.kind !== "none" ? { covered_by: describeCover(cover) } : {}),
    };
  });
  const open = openGates(state)[0];
  let gate: GateView | undefined;
  if (open?.gate) {
    const g = open.gate;
    const t = tally(open);
    gate = {
      step: open.id,
      kind: g.info.kind,
      title: g.info.title,
      digest: g.info.digest,
      approvers: approversView(g.info.approvers),
      min: t.min,
      approvals: g.approvals
        .filter((a) => a.decision === "approve" && t.approvedBy.includes(a.login.toLowerCase()))
        .map((a) => ({ login: a.login, via: a.via, at: new Date(a.at).toISOString() })),
      deadline: g.info.deadline === null ? null : new Date(g.info.deadline).toISOString(),
      ...(g.info.floor ? { floor: approversView(g.info.floor) } : {}),
      ...(g.info.head ? { head: g.info.head } : {}),
      refused: g.refused.map((r) => ({ login: r.login, via: r.via, decision: r.decision, reason: r.reason, message: r.message, at: new Date(r.at).toISOString() })),
    };
  }
  return {
    id: state.id,
    flow: state.flow.name,
    repo: state.repo,
    status: record.status,
    release: state.release,
    trigger: { type: state.trigger.type, actor: state.trigger.actor },
    inputs: state.inputs,
    outputs: state.completed?.outputs ?? {},
    created_at: new Date(record.createdAt).toISOString(),
    updated_at: new Date(record.updatedAt).toISOString(),
    steps,
    ...(gate ? { gate } : {}),
    ...(state.completed?.error ? { error: { code: state.completed.error.code, message: state.completed.error.message } } : {}),
    ...(state.runUrl ? { url: state.runUrl } : {}),
  };
}

/**
 * An event as it may be shown: the callback URLs of `run_created` lose their token (it completes
 * a wait; only the expression that hands it on sees it). Everything else was redacted when it
 * was recorded.
 */
export function publicEvent(e: JournalEvent): JournalEvent {
  if (e.type !== "run_created") return e;
  const callbacks = Object.fromEntries(Object.entries(e.callbacks).map(([step, url]) => [step, `${url.slice(0, url.lastIndexOf("/") + 1)}${REDACTED}`]));
  return { ...e, callbacks };
}
