/**
 * Prometheus metrics (GET /metrics), in a registry of their own (not prom-client's global one).
 * The counters are exported so the parts that see the events can count them: the runtime's
 * listener counts step executions and completed runs, webhook intake counts deliveries, the
 * check-run reporter counts its API calls. Active runs by status are read from the store at
 * each scrape, so every process of a cluster reports the same numbers.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Runtime } from "../../app/runtime.js";
import type { RunState } from "../../core/engine/state.js";
import type { RunStore } from "../../ports/run-store.js";

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
  /** `sluice_step_duration_seconds{kind,outcome}`: how long step attempts this process finished took. */
  stepDuration: Histogram<"kind" | "outcome">;
  /** `sluice_webhook_intake_seconds{outcome}`: from a GitHub delivery's arrival to its answer (outcome accepted | rejected | failed). */
  webhookIntake: Histogram<"outcome">;
  /** `sluice_gates_open`: gates waiting for a decision now (read from the store at each scrape). */
  gatesOpen: Gauge;
  /** `sluice_gate_oldest_open_seconds`: how long the oldest open gate has waited (0: none). */
  gateOldest: Gauge;
  /** `sluice_github_outbox_depth`: writes waiting in the GitHub outbox (read from the store at each scrape). */
  outboxDepth: Gauge;
  /** Where the gauges read from the store come from (observeStore sets it). */
  reader?: StoreReader;
}

/** What the store-read gauges need, given by the composition. */
export interface StoreReader {
  /** When each open gate opened (epoch ms). */
  gatesOpenedAt(): Promise<number[]>;
  outboxDepth(): Promise<number>;
  clock(): number;
}

/** Step durations: a function's milliseconds up to a deploy's hour. */
const STEP_BUCKETS = [0.05, 0.25, 1, 5, 15, 60, 300, 900, 3600];
/** Webhook intake: recorded in the store before the answer, so milliseconds to seconds. */
const INTAKE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

export const ACTIVE_STATUSES = ["queued", "running", "waiting"] as const;

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): SluiceMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "sluice_" });
  const m: SluiceMetrics = {
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
    stepDuration: new Histogram({
      name: "sluice_step_duration_seconds",
      help: "Step attempts finished by this process, by step kind and outcome: how long each took.",
      labelNames: ["kind", "outcome"],
      buckets: STEP_BUCKETS,
      registers: [registry],
    }),
    webhookIntake: new Histogram({
      name: "sluice_webhook_intake_seconds",
      help: "GitHub webhook deliveries: from arrival to answer (the delivery is recorded before it is answered), by outcome.",
      labelNames: ["outcome"],
      buckets: INTAKE_BUCKETS,
      registers: [registry],
    }),
    gatesOpen: new Gauge({
      name: "sluice_gates_open",
      help: "Gates waiting for a human decision now.",
      registers: [registry],
      async collect() {
        const opened = await m.reader?.gatesOpenedAt().catch(() => undefined);
        if (opened) this.set(opened.length);
      },
    }),
    gateOldest: new Gauge({
      name: "sluice_gate_oldest_open_seconds",
      help: "How long the oldest open gate has waited, in seconds (0 when none is open).",
      registers: [registry],
      async collect() {
        // A store out of reach keeps the last values: the scrape still answers.
        const opened = await m.reader?.gatesOpenedAt().catch(() => undefined);
        if (opened) this.set(opened.length ? Math.max(0, (m.reader!.clock() - Math.min(...opened)) / 1000) : 0);
      },
    }),
    outboxDepth: new Gauge({
      name: "sluice_github_outbox_depth",
      help: "Writes waiting in the GitHub outbox (replies, reactions, announcements, check runs).",
      registers: [registry],
      async collect() {
        const depth = await m.reader?.outboxDepth().catch(() => undefined);
        if (depth !== undefined) this.set(depth);
      },
    }),
  };
  return m;
}

/** How long one scrape's reading of the open gates is reused (a scrape asks for it once per gauge). */
const SCRAPE_MS = 1_000;

/** The open gates of a run's state: when each opened. */
function openGatesOf(state: RunState): number[] {
  if (state.completed) return [];
  return Object.values(state.steps).flatMap((s) => (s.gate && !s.settled && s.status === "waiting" ? [s.gate.openedAt] : []));
}

/**
 * The gauges read from the store at each scrape (every process of a cluster reports the same
 * numbers): the open gates and the oldest one's age, the outbox's depth.
 */
export function observeStore(
  m: SluiceMetrics,
  opts: { store: Pick<RunStore, "listRuns">; load(id: string): Promise<{ state: RunState }>; outboxDepth(): Promise<number>; clock?: () => number },
): void {
  const clock = opts.clock ?? Date.now;
  const read = async (): Promise<number[]> => {
    const opened: number[] = [];
    for (const r of await opts.store.listRuns({ status: ["waiting"] })) opened.push(...openGatesOf((await opts.load(r.id)).state));
    return opened;
  };
  // Both gate gauges of one scrape read one answer: every waiting run's journal is loaded once.
  let last: { at: number; opened: Promise<number[]> } | undefined;
  m.reader = {
    gatesOpenedAt() {
      const now = clock();
      if (!last || now - last.at > SCRAPE_MS) last = { at: now, opened: read() };
      return last.opened;
    },
    outboxDepth: opts.outboxDepth,
    clock,
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
        const outcome = e.type === "step_succeeded" ? "succeeded" : "failed";
        m.stepExecutions.inc({ kind, outcome });
        const started = state.steps[e.step]?.startedAt;
        if (started !== undefined && e.at >= started) m.stepDuration.observe({ kind, outcome }, (e.at - started) / 1000);
      } else if (e.type === "run_completed") {
        m.runsCompleted.inc({ status: e.status });
      }
    }
  });
}
