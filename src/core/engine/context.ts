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

/**
 * The `steps` context as a view of the run's state: a step's entry is made when an expression
 * reads it, so evaluating `steps.build.outputs.x` costs the same in a run of 10 steps or 1,000.
 * Listing it (`toJSON(steps)`) gives the steps with an outcome, in flow order.
 */
function stepsView(state: RunState): ExprContext["steps"] {
  const entry = (id: string | symbol): ExprContext["steps"][string] | undefined => {
    const s = typeof id === "string" && Object.hasOwn(state.steps, id) ? state.steps[id] : undefined;
    const outcome = s ? outcomeOf(s.status) : null;
    return s && outcome !== null ? { outputs: s.outputs ?? {}, outcome } : undefined;
  };
  return new Proxy({} as ExprContext["steps"], {
    get: (_target, id) => entry(id),
    has: (_target, id) => entry(id) !== undefined,
    ownKeys: () => state.flow.steps.map((d) => d.id).filter((id) => entry(id) !== undefined),
    getOwnPropertyDescriptor: (_target, id) => {
      const value = entry(id);
      return value === undefined ? undefined : { value, enumerable: true, configurable: true, writable: false };
    },
  });
}

/** The context of a run now. `steps` is a view (see stepsView); `status` is worked out when a status function asks. */
export function exprContext(state: RunState): ExprContext {
  const [owner, name] = state.repo.includes("/") ? state.repo.split("/") : [undefined, state.repo];
  return {
    inputs: state.inputs,
    steps: stepsView(state),
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
    get status() {
      const failed = state.flow.steps.some((d) => outcomeOf(state.steps[d.id]?.status ?? "pending") === "failure");
      return { failed, cancelled: state.cancelRequested !== undefined };
    },
  };
}
