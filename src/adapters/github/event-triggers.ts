/**
 * GitHub events as triggers: `on.github` of the live release's flows starts runs, and
 * `wait.event` steps of the repository's active runs are completed by a matching event (one
 * that arrives before its run reaches the step is kept for it). Events the app caused itself
 * never start flows, so a flow cannot trigger itself in a loop.
 */
import type { JournalEvent } from "../../core/engine/events.js";
import { SluiceError } from "../../core/errors.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import type { WaitSpec } from "../../core/flow/types.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import { ACTIVE } from "./approvals.js";
import { errorText, liveOptions, startRun, type GitHubDeps } from "./deps.js";
import { liveSnapshot } from "./snapshot.js";
import { flowsTriggeredBy, waitingEventSteps } from "./triggers.js";

/**
 * Whether a run's flow has a `wait.event` step, by run id. A run's flow is pinned, so the answer
 * never changes: each active run is loaded once to learn it, not once per delivery.
 */
const eventWaiters = new Map<string, boolean>();
const EVENT_WAITERS_MAX = 20_000;

async function waitsForEvents(deps: GitHubDeps, runId: string): Promise<boolean> {
  const known = eventWaiters.get(runId);
  if (known !== undefined) return known;
  const { state } = await deps.runtime.load(runId);
  const waits = state.flow.steps.some((s) => s.kind === "wait" && (s.params as WaitSpec).event !== undefined);
  eventWaiters.set(runId, waits);
  if (eventWaiters.size > EVENT_WAITERS_MAX) eventWaiters.delete(eventWaiters.keys().next().value as string);
  return waits;
}

/** Whether an active run of the repository has a `wait.event` step: only then can an event complete one. */
export async function anyEventWaits(deps: GitHubDeps, repo: string): Promise<boolean> {
  for (const record of await deps.store.listRuns({ repo, status: ACTIVE, limit: 500 })) {
    if (await waitsForEvents(deps, record.id)) return true;
  }
  return false;
}

/**
 * Whether a live flow of the repository has an `on.github` trigger for this event (and its
 * action); when the live release cannot be read, true: the stage says what is wrong.
 */
export async function anyTriggerFor(deps: GitHubDeps, repo: string, event: string, payload: any): Promise<boolean> {
  try {
    const api = await deps.installations.api(repo, payload?.installation?.id);
    const live = await liveSnapshot(deps.store, new GitHubFlowSource(repo, api), deps.runtime.now(), liveOptions(deps, payload));
    return live.snapshot.flows.some((f) => f.flow?.on.github?.some((t) => t.event === event && (!t.actions?.length || t.actions.includes(payload?.action))));
  } catch {
    return true;
  }
}

/** Completes the `wait.event` steps an event matches; returns the runs signalled. */
export async function completeEventWaits(deps: GitHubDeps, repo: string, event: string, payload: unknown): Promise<string[]> {
  const signalled: string[] = [];
  const runs = await deps.store.listRuns({ repo, status: ACTIVE, limit: 500 });
  for (const record of runs) {
    if (!(await waitsForEvents(deps, record.id))) continue;
    const { state } = await deps.runtime.load(record.id);
    const steps = waitingEventSteps(state, event, payload);
    if (!steps.length) continue;
    const at = deps.runtime.now();
    const events: JournalEvent[] = steps.map((step) => ({ type: "event_received", at, step, payload }));
    await deps.runtime.appendSignal(record.id, events);
    deps.logger.info("event completed a wait", { run: record.id, steps, event });
    deps.kick(record.id);
    signalled.push(record.id);
  }
  return signalled;
}

function issueOf(payload: any): number | undefined {
  const n = payload?.issue?.number ?? payload?.pull_request?.number ?? (typeof payload?.number === "number" ? payload.number : undefined);
  return typeof n === "number" ? n : undefined;
}

/** Starts the live flows whose `on.github` matches the event; returns the runs created. */
export async function startTriggeredFlows(deps: GitHubDeps, repo: string, event: string, payload: any): Promise<string[]> {
  const me = await deps.installations.bot().catch(() => undefined);
  const sender = payload?.sender?.login;
  if (me && typeof sender === "string" && sender.toLowerCase() === me.login.toLowerCase()) return [];
  const api = await deps.installations.api(repo, payload?.installation?.id);
  let live;
  try {
    live = await liveSnapshot(deps.store, new GitHubFlowSource(repo, api), deps.runtime.now(), liveOptions(deps, payload));
  } catch (e) {
    if (e instanceof SluiceError && (e.code === "CONFIG_INVALID" || e.code === "REF_NOT_FOUND" || e.code === "NOT_FOUND")) {
      deps.logger.warn("no live release to trigger from", { repo, event, error: e.message });
      return [];
    }
    throw e;
  }
  const flows = live.snapshot.flows.flatMap((f) => (f.flow?.on.github?.length ? [f.flow] : []));
  if (!flows.length) return [];
  const { triggered, errors } = flowsTriggeredBy(flows, event, payload, repo);
  for (const err of errors) deps.logger.warn("an on.github `if` could not be evaluated", { repo, event, ...err });
  const created: string[] = [];
  for (const { flow } of triggered) {
    let inputs: Record<string, unknown>;
    try {
      inputs = resolveInputs(flow, {});
    } catch (e) {
      deps.logger.warn("flow not started: its inputs have no defaults", { repo, flow: flow.name, event, error: errorText(e) });
      continue;
    }
    const issue = issueOf(payload);
    created.push(
      await startRun(deps, {
        flow,
        config: live.snapshot.config,
        release: live.release,
        repo,
        inputs,
        trigger: { type: "github", actor: typeof sender === "string" ? sender : "github", event: payload, ...(issue !== undefined ? { issue } : {}) },
      }),
    );
  }
  return created;
}
