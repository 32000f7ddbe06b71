/**
 * Prometheus metrics (GET /metrics), in a registry of their own (not prom-client's global one).
 * The counters are exported so the parts that see the events can count them: the runtime's
 * listener counts step executions and completed runs, webhook intake counts deliveries, the
 * check-run reporter counts its API calls. Active runs by status are read from the store at
 * each scrape, so every process of a cluster reports the same numbers.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { Runtime } from "../../app/runtime.js";

export interface SluiceMetrics {
  registry: Registry;
  /** `sluice_runs{status}`: runs that are queued, running or waiting now (set at each scrape). */
  activeRuns: Gauge<"status">;
  /** `sluice_runs_completed_total{status}`: runs this process saw end, by final status. */
  runsCompleted: Counter<"status">;
  /** `sluice_step_executions_total{kind,outcome}`: step attempts this process finished (outcome succeeded | failed). */
  stepExecutions: Counter<"kind" | "outcome">;
  /** `sluice_webhook_deliveries_total{event,outcome}`: GitHub and generic webhook deliveries (outcome accepted | duplicate | rejected | failed). */
  webhookDeliveries: Counter<"event" | "outcome">;
  /** `sluice_check_run_api_calls_total{method,outcome}`: check-run API calls (method create | update | find; outcome ok | rate_limited | error). */
  checkRunCalls: Counter<"method" | "outcome">;
  /** `sluice_callbacks_total{outcome}`: POST /callbacks/<token> answers (completed | duplicate | not_found | invalid | too_large | refused). */
  callbacks: Counter<"outcome">;
  /**
   * `sluice_github_requests_total{kind,outcome}`: requests to GitHub's API as the app's installations
   * (kind read | write | create, create being content-creating; outcome ok | not_modified | rate_limited | error).
   */
  githubRequests: Counter<"kind" | "outcome">;
  /** `sluice_github_writes_skipped_total{priority}`: acknowledgements not sent because the write budget was under pressure. */
  githubWritesSkipped: Counter<"priority">;
  /** `sluice_github_holds_total`: holds GitHub asked for (a 403/429 rate limit, an exhausted quota) that this process obeyed. */
  githubHolds: Counter;
  /** `sluice_github_outbox_total{kind,outcome}`: writes of the GitHub outbox (replies, reactions, check runs, sticky comments) by outcome (sent | skipped | retried | dropped). */
  githubOutbox: Counter<"kind" | "outcome">;
}

export const ACTIVE_STATUSES = ["queued", "running", "waiting"] as const;

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): SluiceMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "sluice_" });
  return {
    registry,
    activeRuns: new Gauge({ name: "sluice_runs", help: "Runs that are queued, running or waiting, by status.", labelNames: ["status"], registers: [registry] }),
    runsCompleted: new Counter({ name: "sluice_runs_completed_total", help: "Runs this process saw end, by final status.", labelNames: ["status"], registers: [registry] }),
    stepExecutions: new Counter({
      name: "sluice_step_executions_total",
      help: "Step attempts finished by this process, by step kind and outcome.",
      labelNames: ["kind", "outcome"],
      registers: [registry],
    }),
    webhookDeliveries: new Counter({
      name: "sluice_webhook_deliveries_total",
      help: "Webhook deliveries received, by event and outcome.",
      labelNames: ["event", "outcome"],
      registers: [registry],
    }),
    checkRunCalls: new Counter({
      name: "sluice_check_run_api_calls_total",
      help: "GitHub check-run API calls made by the run reporter, by method and outcome.",
      labelNames: ["method", "outcome"],
      registers: [registry],
    }),
    callbacks: new Counter({ name: "sluice_callbacks_total", help: "Callback requests answered, by outcome.", labelNames: ["outcome"], registers: [registry] }),
    githubRequests: new Counter({
      name: "sluice_github_requests_total",
      help: "Requests to GitHub's API as the app's installations, by kind (read, write, create: content-creating) and outcome.",
      labelNames: ["kind", "outcome"],
      registers: [registry],
    }),
    githubWritesSkipped: new Counter({
      name: "sluice_github_writes_skipped_total",
      help: "Acknowledgements (reactions, the link to a run started from an issue) not sent because GitHub's write budget was under pressure.",
      labelNames: ["priority"],
      registers: [registry],
    }),
    githubHolds: new Counter({ name: "sluice_github_holds_total", help: "Holds GitHub asked for (403/429 rate limits, an exhausted quota), obeyed by every writer.", registers: [registry] }),
    githubOutbox: new Counter({
      name: "sluice_github_outbox_total",
      help: "Writes of the GitHub outbox (replies, reactions, check runs, sticky comments), by kind and outcome (sent, skipped, retried, dropped).",
      labelNames: ["kind", "outcome"],
      registers: [registry],
    }),
  };
}

/** The process's metrics: increment these. */
export const metrics: SluiceMetrics = createMetrics();

const observed = new WeakMap<Runtime, WeakSet<SluiceMetrics>>();

/** Counts step executions and completed runs from a runtime's events (once per runtime and registry). */
export function observeRuntime(runtime: Runtime, m: SluiceMetrics = metrics): void {
  const seen = observed.get(runtime) ?? new WeakSet<SluiceMetrics>();
  if (seen.has(m)) return;
  seen.add(m);
  observed.set(runtime, seen);
  runtime.onEvents((_runId, events, state) => {
    for (const e of events) {
      if (e.type === "step_succeeded" || e.type === "step_failed") {
        const kind = state.flow.steps.find((s) => s.id === e.step)?.kind ?? "unknown";
        m.stepExecutions.inc({ kind, outcome: e.type === "step_succeeded" ? "succeeded" : "failed" });
      } else if (e.type === "run_completed") {
        m.runsCompleted.inc({ status: e.status });
      }
    }
  });
}
