/**
 * Which flows a GitHub event starts (`on.github`) and which waiting runs it completes
 * (`wait.event`). The `if` filters are Actions expressions evaluated with the `github` context
 * of the event: `github.event` is the payload, as in a workflow. Pure.
 */
import { exprContext } from "../../core/engine/context.js";
import type { RunState } from "../../core/engine/state.js";
import { evaluateCondition, type ExprContext } from "../../core/expr/expressions.js";
import type { Flow, WaitSpec } from "../../core/flow/types.js";

export interface EventFilter {
  event: string;
  actions?: string[];
  if?: string;
}

const record = (v: unknown): Record<string, unknown> => (v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

/** The `github` context of an event, as a workflow sees it. */
export function githubContextOf(event: string, payload: unknown, repo: string): Record<string, unknown> {
  const p = record(payload);
  const [owner, name] = repo.split("/");
  return {
    event: p,
    event_name: event,
    actor: record(p.sender).login ?? null,
    repository: repo,
    repository_owner: owner ?? null,
    repository_name: name ?? null,
    sha: typeof p.after === "string" ? p.after : (record(record(p.pull_request).head).sha ?? null),
    ref: typeof p.ref === "string" ? p.ref : null,
  };
}

function eventContext(event: string, payload: unknown, repo: string): ExprContext {
  return { inputs: {}, steps: {}, github: githubContextOf(event, payload, repo), run: {}, callbacks: {}, status: { failed: false, cancelled: false } };
}

export type FilterResult = { match: true } | { match: false; error?: string };

/** Whether an event passes a filter: same event name, an action listed (when listed), `if` true. */
export function matchFilter(filter: EventFilter, event: string, payload: unknown, ctx: ExprContext): FilterResult {
  if (filter.event !== event) return { match: false };
  const action = record(payload).action;
  if (filter.actions?.length && !(typeof action === "string" && filter.actions.includes(action))) return { match: false };
  if (filter.if === undefined) return { match: true };
  try {
    return evaluateCondition(filter.if, ctx) ? { match: true } : { match: false };
  } catch (e) {
    return { match: false, error: e instanceof Error ? e.message : String(e) };
  }
}

export interface TriggeredFlow {
  flow: Flow;
  /** Index of the matching entry in `on.github`. */
  index: number;
}

/** The flows (of a live release) an event starts, and the `if` filters that could not be evaluated. */
export function flowsTriggeredBy(
  flows: readonly Flow[],
  event: string,
  payload: unknown,
  repo: string,
): { triggered: TriggeredFlow[]; errors: { flow: string; index: number; error: string }[] } {
  const ctx = eventContext(event, payload, repo);
  const triggered: TriggeredFlow[] = [];
  const errors: { flow: string; index: number; error: string }[] = [];
  for (const flow of flows) {
    const filters = flow.on.github ?? [];
    for (const [index, filter] of filters.entries()) {
      const r = matchFilter(filter, event, payload, ctx);
      if (r.match) {
        triggered.push({ flow, index });
        break;
      }
      if (r.error) errors.push({ flow: flow.name, index, error: r.error });
    }
  }
  return { triggered, errors };
}

/**
 * The `wait.event` steps of a run that an event completes: steps not settled yet (waiting, or
 * not reached: an event that arrives early is kept) with no payload recorded.
 */
export function waitingEventSteps(state: RunState, event: string, payload: unknown): string[] {
  if (state.completed) return [];
  const base = exprContext(state);
  const ctx: ExprContext = { ...base, github: { ...base.github, ...githubContextOf(event, payload, state.repo) } };
  const out: string[] = [];
  for (const def of state.flow.steps) {
    if (def.kind !== "wait") continue;
    const wait = (def.params as WaitSpec).event;
    if (!wait) continue;
    const s = state.steps[def.id];
    if (!s || s.settled || def.id in state.eventPayloads) continue;
    if (matchFilter(wait.github, event, payload, ctx).match) out.push(def.id);
  }
  return out;
}
