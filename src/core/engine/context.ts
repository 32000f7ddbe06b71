/** The expression context of a run at a point (SPEC §2: inputs, steps, github, run, callbacks). */
import type { ExprContext } from "../expr/expressions.js";
import type { RunState } from "./state.js";

export function outcomeOf(status: string): "success" | "failure" | "skipped" | null {
  switch (status) {
    case "succeeded":
      return "success";
    case "failed":
    case "cancelled":
      return "failure";
    case "skipped":
      return "skipped";
    default:
      return null;
  }
}

export function exprContext(state: RunState): ExprContext {
  const steps: ExprContext["steps"] = {};
  let failed = false;
  for (const def of state.flow.steps) {
    const s = state.steps[def.id];
    if (!s) continue;
    const outcome = outcomeOf(s.status);
    if (outcome === "failure") failed = true;
    if (outcome !== null) steps[def.id] = { outputs: s.outputs ?? {}, outcome };
  }
  const [owner, name] = state.repo.includes("/") ? state.repo.split("/") : [undefined, state.repo];
  return {
    inputs: state.inputs,
    steps,
    github: {
      event: state.trigger.event ?? {},
      event_name: state.trigger.type,
      actor: state.trigger.actor,
      repository: state.repo,
      repository_owner: owner ?? null,
      repository_name: name ?? null,
      sha: state.release.sha,
      ref: state.release.ref,
    },
    run: {
      id: state.id,
      url: state.runUrl ?? null,
      attempt: state.attempt,
      release: state.release,
      flow: state.flow.name,
    },
    callbacks: Object.fromEntries(Object.entries(state.callbacks).map(([k, url]) => [k, { url }])),
    status: { failed, cancelled: state.cancelRequested !== undefined },
  };
}
