/**
 * Signals from people and systems: approvals, rejections, callbacks, events, cancel, retry.
 * Each is checked against the run's state first (a clear error, nothing appended), then
 * appended to the journal and the run advanced in this process.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import type { ApprovalSignal, JournalEvent } from "../core/engine/events.js";
import { judgeDecision } from "../core/engine/decisions.js";
import { approversAt, digestMatches, quorumOf } from "../core/engine/gates.js";
import type { RunState, StepState } from "../core/engine/state.js";
import { SluiceError } from "../core/errors.js";
import type { WaitSpec } from "../core/flow/types.js";
import type { Runtime } from "./runtime.js";

const ajv = new Ajv2020({ allErrors: true, strict: false });

/** The open gates of a run, in step order. */
export function openGates(state: RunState): StepState[] {
  if (state.completed) return [];
  return state.flow.steps.map((d) => state.steps[d.id]).filter((s): s is StepState => !!s?.gate && !s.settled);
}

export interface DecisionResult {
  runId: string;
  step: string;
  counted: boolean;
}

/**
 * Records an approval or a rejection. A decision that does not count is journaled as refused
 * (who, via, why) and throws NOT_WAITING, APPROVAL_NOT_ELIGIBLE, APPROVAL_WRONG_PLACE or
 * APPROVAL_STALE.
 */
export async function decideGate(rt: Runtime, runId: string, signal: ApprovalSignal & { step?: string }): Promise<DecisionResult> {
  const { state } = await rt.load(runId);
  const gates = openGates(state);
  if (gates.length === 0) {
    throw new SluiceError("NOT_WAITING", `run ${runId} has no open gate (status: ${state.completed?.status ?? "running"})`, { run: runId });
  }
  const s = signal.step ? gates.find((g) => g.id === signal.step) : gates[0];
  if (!s?.gate) {
    throw new SluiceError("NOT_WAITING", `step '${signal.step}' of run ${runId} is not waiting for approval (open: ${gates.map((g) => g.id).join(", ")})`, { run: runId });
  }
  const verdict = judgeDecision(state, s, signal, rt.mode);
  const { step: _step, ...facts } = signal;
  if (!verdict.ok) {
    // The audit trail shows attempts too: who, how, and why it did not count.
    await rt.appendSignal(runId, [
      { type: "approval_refused", at: rt.now(), step: s.id, login: verdict.login, via: signal.via, decision: signal.decision, reason: verdict.reason, message: verdict.message, ...(signal.digest ? { digest: signal.digest } : {}) },
    ]);
    throw new SluiceError(verdict.code, verdict.message, { run: runId, step: s.id, reason: verdict.reason, ...(verdict.reason === "stale_digest" ? { digest: s.gate!.info.digest } : {}) });
  }
  const event: JournalEvent = {
    type: "approval_received",
    at: rt.now(),
    step: s.id,
    ...facts,
    login: verdict.login,
    digest: s.gate!.info.digest,
    ...(signal.comment ? { comment: signal.comment } : {}),
  };
  await rt.appendSignal(runId, [event]);
  await rt.advance(runId);
  return { runId, step: s.id, counted: true };
}

/** Who may still approve a gate and what it waits for (`gates explain`). */
export function explainGate(state: RunState, s: StepState, mode: "local" | "github") {
  const gate = s.gate!;
  const approvers = approversAt(gate.info, gate.level);
  const min = quorumOf(gate.info, gate.level);
  const valid = gate.approvals.filter((a) => digestMatches(a.digest, gate.info.digest));
  const stale = gate.approvals.filter((a) => !digestMatches(a.digest, gate.info.digest));
  const approvedBy = [...new Set(valid.filter((a) => a.decision === "approve").map((a) => a.login))];
  const notes: string[] = [];
  if (mode === "local" && approvers.teams?.length) {
    notes.push(`needs a member of ${approvers.teams.join(", ")}: team membership is resolved by the GitHub App, not locally`);
  }
  if (!gate.info.allow_self_approval) notes.push(`${state.trigger.actor} triggered the run and cannot approve it`);
  if (gate.info.floor) notes.push("every approver must also meet the default branch's policy approvers (the floor)");
  if (gate.info.head) notes.push(`reviews count only on #${gate.info.head.pull_request} of its head ${gate.info.head.sha.slice(0, 7)}`);
  return {
    step: s.id,
    kind: gate.info.kind,
    title: gate.info.title,
    ...(gate.info.summary ? { summary: gate.info.summary } : {}),
    digest: gate.info.digest,
    approvers: { users: approvers.users ?? [], teams: approvers.teams ?? [], permission: approvers.permission ?? null },
    min,
    approvals: valid.map((a) => ({ login: a.login, via: a.via, at: new Date(a.at).toISOString(), decision: a.decision })),
    quorum: `${approvedBy.length}/${min}`,
    stale_approvals: stale.map((a) => ({ login: a.login, via: a.via, at: new Date(a.at).toISOString(), digest: a.digest ?? null })),
    refused: gate.refused.map((r) => ({ login: r.login, via: r.via, decision: r.decision, reason: r.reason, message: r.message, at: new Date(r.at).toISOString() })),
    floor: gate.info.floor ? { users: gate.info.floor.users ?? [], teams: gate.info.floor.teams ?? [], permission: gate.info.floor.permission ?? null } : null,
    escalation_level: gate.level,
    deadline: gate.info.deadline === null ? null : new Date(gate.info.deadline).toISOString(),
    evidence: gate.info.evidence,
    notes,
  };
}

/**
 * Completes a callback wait. The body is checked against the step's schema; a second
 * completion is a no-op that answers with the first body. Works before the run reaches the step.
 */
export async function completeCallback(rt: Runtime, runId: string, step: string, body: unknown): Promise<{ body: unknown; duplicate: boolean }> {
  const { state } = await rt.load(runId);
  const def = state.flow.steps.find((d) => d.id === step);
  const wait = def?.kind === "wait" ? (def.params as WaitSpec) : undefined;
  if (!def || !wait?.callback) {
    const callbacks = state.flow.steps.filter((d) => d.kind === "wait" && (d.params as WaitSpec).callback).map((d) => d.id);
    throw new SluiceError("NOT_FOUND", `run ${runId} has no callback step '${step}' (callback steps: ${callbacks.join(", ") || "none"})`, { run: runId, step });
  }
  if (step in state.callbackBodies) return { body: state.callbackBodies[step], duplicate: true };
  if (state.completed) throw new SluiceError("NOT_WAITING", `run ${runId} has ended (${state.completed.status})`, { run: runId });
  if (wait.callback.schema) {
    const validate = ajv.compile(wait.callback.schema);
    if (!validate(body)) {
      const problems = (validate.errors ?? []).map((e) => `${e.instancePath || "body"} ${e.message}`);
      throw new SluiceError("CALLBACK_INVALID", `the callback body does not match the step's schema: ${problems.join("; ")}`, { run: runId, step, problems });
    }
  }
  await rt.appendSignal(runId, [{ type: "callback_received", at: rt.now(), step, body }]);
  await rt.advance(runId);
  return { body, duplicate: false };
}

/** Looks a callback token up and completes it (POST /callbacks/<token>). */
export async function completeCallbackToken(rt: Runtime, token: string, body: unknown) {
  const hit = await rt.store.findCallback(token);
  if (!hit) throw new SluiceError("NOT_FOUND", "unknown callback token");
  return { ...hit, ...(await completeCallback(rt, hit.runId, hit.step, body)) };
}

export async function cancelRun(rt: Runtime, runId: string, by: string, reason?: string): Promise<void> {
  const { state } = await rt.load(runId);
  if (state.completed) throw new SluiceError("NOT_WAITING", `run ${runId} has already ended (${state.completed.status})`, { run: runId });
  await rt.appendSignal(runId, [{ type: "run_cancel_requested", at: rt.now(), by, ...(reason ? { reason } : {}) }]);
  await rt.advance(runId);
}

/** Retries a failed, cancelled or timed-out run from its first unsettled step. */
export async function retryRun(rt: Runtime, runId: string, by: string): Promise<void> {
  const { state } = await rt.load(runId);
  if (!state.completed || state.completed.status === "succeeded") {
    throw new SluiceError("NOT_WAITING", `run ${runId} is ${state.completed?.status ?? "still active"}: only failed, cancelled or timed-out runs are retried`, { run: runId });
  }
  await rt.appendSignal(runId, [{ type: "run_retry_requested", at: rt.now(), by }]);
  await rt.advance(runId);
}
