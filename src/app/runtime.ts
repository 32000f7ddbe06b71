/**
 * The thin imperative shell around the pure core: claim → load → fold → decide → act →
 * append, in a loop, under a lease. Each append names the sequence number it expects, so two
 * workers racing on one run cannot both win; a step's start is journaled before it runs, so a
 * crash can never make a completed step run again.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { exprContext } from "../core/engine/context.js";
import { decide, type Turn } from "../core/engine/decide.js";
import { bindHead } from "../core/engine/gates.js";
import type { JournalEvent, Release, StepErrorInfo, Trigger } from "../core/engine/events.js";
import { fold, type RunState } from "../core/engine/state.js";
import { ConflictError, EffectIsWriteError, NonRetriableError, RetryAfterError, SluiceError, assertNever } from "../core/errors.js";
import { evaluateTemplate } from "../core/expr/expressions.js";
import type { Config, Flow, StepKind } from "../core/flow/types.js";
import { createRedactor, type Redactor } from "../core/redact.js";
import type { ResourceStore } from "../ports/resource-store.js";
import type { RunRecord, RunStore } from "../ports/run-store.js";
import type { Secrets } from "../ports/secrets.js";
import type { GitHubApi, Logger, ResolvedConnection, StepContext, StepExecutor } from "../ports/step-executor.js";

/** Outputs larger than this are kept as resources (SPEC §1). */
export const RESOURCE_THRESHOLD = 64 * 1024;

export interface RuntimeOptions {
  store: RunStore;
  resources: ResourceStore;
  executors: ReadonlyMap<StepKind, StepExecutor>;
  secrets: Secrets;
  logger: Logger;
  mode: "local" | "github";
  clock?: () => number;
  workerId?: string;
  leaseMs?: number;
  /** Base URL for callback URLs and run pages. */
  publicUrl?: string;
  /** GitHub API for a run's repository: the installation on the server, a connection locally. */
  github?: (repo: string, connection: (name: string) => ResolvedConnection, connectionNames: string[]) => GitHubApi | undefined;
  /** Reads a file at the run's pinned SHA (function steps' `file`). */
  readFile?: (repo: string, sha: string, path: string) => Promise<string | undefined>;
}

export type Listener = (runId: string, events: JournalEvent[], state: RunState) => void;

export interface NewRunRequest {
  flow: Flow;
  config: Config;
  release: Release;
  repo: string;
  inputs: Record<string, unknown>;
  trigger: Trigger;
}

/** A time-sortable run id: 9 characters of time, 6 of randomness. */
export function newRunId(now: number): string {
  return now.toString(36).padStart(9, "0") + randomBytes(4).toString("hex").slice(0, 6);
}

function stepErrorOf(e: unknown, timedOut: boolean, aborted: boolean): StepErrorInfo {
  if (timedOut) return { code: "STEP_TIMEOUT", message: "the step passed its timeout", retryable: true };
  if (e instanceof RetryAfterError) return { code: e.code, message: e.message, retryable: true, retryAfterMs: e.retryAfterMs };
  if (e instanceof NonRetriableError) return { code: e.code, message: e.message, retryable: false };
  if (e instanceof SluiceError) return { code: e.code, message: e.message, retryable: !aborted };
  return { code: "STEP_FAILED", message: e instanceof Error ? e.message : String(e), retryable: !aborted };
}

export class Runtime {
  readonly store: RunStore;
  readonly resources: ResourceStore;
  readonly logger: Logger;
  readonly mode: "local" | "github";
  readonly workerId: string;
  private readonly clock: () => number;
  private readonly leaseMs: number;
  private readonly listeners = new Set<Listener>();
  /** The advance in flight per run in this process (single-flight). */
  private readonly flights = new Map<string, { again: boolean; done: Promise<boolean> }>();
  private leases = 0;

  constructor(private readonly opts: RuntimeOptions) {
    this.store = opts.store;
    this.resources = opts.resources;
    // The engine's own log lines (a failed turn's stack, say) are redacted like everything else.
    this.logger = redactingLogger(opts.logger, (v) => createRedactor(opts.secrets.values())(v), {});
    this.mode = opts.mode;
    this.clock = opts.clock ?? Date.now;
    this.workerId = opts.workerId ?? `w-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.leaseMs = opts.leaseMs ?? 30_000;
  }

  now(): number {
    return this.clock();
  }

  onEvents(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(runId: string, events: JournalEvent[], state: RunState): void {
    for (const l of this.listeners) {
      try {
        l(runId, events, state);
      } catch (e) {
        this.logger.warn("event listener failed", { runId, error: String(e) });
      }
    }
  }

  /** Creates a run (queued, due now) and returns its id; `advance` then runs it. */
  async createRun(req: NewRunRequest): Promise<string> {
    const now = this.now();
    const id = newRunId(now);
    const base = (this.opts.publicUrl ?? "http://localhost:3000").replace(/\/+$/, "");
    const tokens = req.flow.steps
      .filter((s) => s.kind === "wait" && (s.params as { callback?: unknown }).callback !== undefined)
      .map((s) => ({ token: randomBytes(24).toString("base64url"), step: s.id }));
    const event: JournalEvent = {
      type: "run_created",
      at: now,
      run_id: id,
      flow: req.flow,
      config: req.config,
      release: req.release,
      repo: req.repo,
      ...createRedactor(this.opts.secrets.values())({ inputs: req.inputs, trigger: req.trigger }),
      callbacks: Object.fromEntries(tokens.map((c) => [c.step, `${base}/callbacks/${c.token}`])),
      ...(this.opts.publicUrl ? { run_url: `${base}/runs/${id}` } : {}),
    };
    const group = req.flow.concurrency ? this.concurrencyGroup(req, id) : null;
    await this.store.createRun(
      { id, flow: req.flow.name, repo: req.repo, status: "queued", release: req.release, concurrencyGroup: group, createdAt: now, wakeAt: now, callbackTokens: tokens },
      [event],
    );
    return id;
  }

  /** The run's concurrency group; drafts have groups of their own, so a draft never queues or cancels a live run. */
  private concurrencyGroup(req: NewRunRequest, id: string): string {
    const state = fold([
      { type: "run_created", at: 0, run_id: id, flow: req.flow, config: req.config, release: req.release, repo: req.repo, inputs: req.inputs, trigger: req.trigger, callbacks: {} },
    ]);
    const template = req.flow.concurrency?.group ?? req.flow.name;
    const value = evaluateGroup(template, state);
    return `${req.repo}:${req.release.kind === "draft" ? "draft:" : ""}${value}`;
  }

  /**
   * What a run records and shows is redacted: every secret the server knows, in each form it
   * travels in, and the run's callback tokens (which complete a wait: only the expression that
   * hands one on sees it).
   */
  private redactorFor(state: RunState): Redactor {
    return createRedactor([...this.opts.secrets.values(), ...callbackTokens(state)]);
  }

  /**
   * A gate about a pull request (the one it names, a merge's own, or the one the run started
   * from) binds that pull request's head as it is now: its digest covers the head, a review
   * counts only of that head, and a merge it covers passes that SHA (SPEC §4, §5).
   */
  private async bindHeads(state: RunState, events: JournalEvent[]): Promise<JournalEvent[]> {
    const out: JournalEvent[] = [];
    for (const e of events) {
      const pr = e.type === "gate_opened" && e.gate.kind !== "unknown_outcome" ? (e.gate.pull_request ?? pullRequestOf(state.trigger)) : undefined;
      const api = pr === undefined ? undefined : this.opts.github?.(state.repo, (name) => this.resolveConnection(state, name), Object.keys(state.config.connections));
      if (e.type !== "gate_opened" || pr === undefined || !api) {
        out.push(e);
        continue;
      }
      const sha = await pullRequestHead(api, state.repo, pr);
      out.push(sha ? { ...e, gate: bindHead(e.gate, { pull_request: pr, sha }, { sha: state.release.sha, runId: state.id, step: e.step }) } : e);
    }
    return out;
  }

  async load(id: string): Promise<{ record: RunRecord; events: JournalEvent[]; seq: number; state: RunState }> {
    const record = await this.store.getRun(id);
    if (!record) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { run: id });
    const stored = await this.store.loadJournal(id);
    const events = stored.map((s) => s.event);
    return { record, events, seq: stored.at(-1)?.seq ?? 0, state: fold(events) };
  }

  /**
   * Advances a run until it ends or waits. Single-flight: one advance per run at a time in this
   * process, under a lease of its own (never shared with another advance, so two callers can
   * never both hold the run). A caller that finds the run busy here leaves it to the advance in
   * flight, which goes round once more to fold in what the caller recorded, and shares its
   * result. Returns false when another process holds the run (it carries on from the journal).
   */
  advance(id: string): Promise<boolean> {
    const busy = this.flights.get(id);
    if (busy) {
      busy.again = true;
      return busy.done;
    }
    return this.fly(id, undefined);
  }

  /** Runs the advance of `id` as the flight of this process; `claimed` is a lease already held. */
  private fly(id: string, claimed: string | undefined): Promise<boolean> {
    const flight = { again: false, done: Promise.resolve(false) };
    this.flights.set(id, flight);
    flight.done = (async () => {
      let owner = claimed;
      let advanced = false;
      try {
        do {
          flight.again = false;
          owner ??= this.leaseOwner();
          if (owner !== claimed && !(await this.store.acquireLease(id, owner, this.now(), this.leaseMs))) return advanced;
          try {
            await this.turns(id, owner);
            advanced = true;
          } finally {
            await this.store.releaseLease(id, owner);
            owner = undefined;
            claimed = undefined;
          }
        } while (flight.again);
        return advanced;
      } finally {
        this.flights.delete(id);
      }
    })();
    return flight.done;
  }

  /** A fresh lease owner: leases are per advance, not per process. */
  private leaseOwner(): string {
    return `${this.workerId}/${(this.leases++).toString(36)}`;
  }

  private async turns(id: string, owner: string): Promise<void> {
    let { record, events, seq, state } = await this.load(id);
    for (let guard = 0; guard < 100_000; guard++) {
      const now = this.now();
      const groupBusy = await this.groupBusy(record, state);
      const turn = decide(state, { now, groupBusy });
      try {
        switch (turn.kind) {
          case "append": {
            const recorded = this.redactorFor(state)(await this.bindHeads(state, turn.events));
            const completed = recorded.find((e) => e.type === "run_completed");
            const update = completed && completed.type === "run_completed" ? { status: completed.status, wakeAt: null } : { status: "running" as const, wakeAt: now };
            seq = await this.store.append(id, seq, recorded, update);
            events = events.concat(recorded);
            state = fold(events);
            this.emit(id, recorded, state);
            if (completed) {
              await this.wakeGroup(record);
              return;
            }
            continue;
          }
          case "execute": {
            const started: JournalEvent = { type: "step_started", at: now, step: turn.step.id, attempt: turn.attempt, key: turn.key, effect: turn.effect };
            seq = await this.store.append(id, seq, [started], { status: "running", wakeAt: now });
            events = events.concat([started]);
            state = fold(events);
            this.emit(id, [started], state);
            const result = await this.execute(state, turn, owner, () => seq);
            // A signal (a callback, a cancel) may have been appended meanwhile: the result still
            // stands if the attempt is still the one in flight. If another worker took the run
            // over (our lease lapsed), the attempt was superseded: drop the result and stop.
            for (let tries = 0; ; tries++) {
              try {
                seq = await this.store.append(id, seq, [result], { status: "running", wakeAt: this.now() });
                break;
              } catch (e) {
                if (!(e instanceof ConflictError) || tries > 20) throw e;
                ({ record, events, seq, state } = await this.load(id));
                if (state.completed || state.steps[turn.step.id]?.inFlight?.attempt !== turn.attempt) {
                  this.logger.warn("attempt superseded by another worker; its result is dropped", { run: id, step: turn.step.id, attempt: turn.attempt });
                  return;
                }
              }
            }
            events = events.concat([result]);
            state = fold(events);
            this.emit(id, [result], state);
            continue;
          }
          case "wait":
            // Records the status and the next wake-up (compare-and-set like any append).
            seq = await this.store.append(id, seq, [], { status: turn.status, wakeAt: turn.wakeAt });
            return;
          case "done":
            // The run_completed append already recorded the final status.
            return;
          default:
            assertNever(turn, "turn");
        }
      } catch (e) {
        if (!(e instanceof ConflictError)) throw e;
        ({ record, events, seq, state } = await this.load(id));
      }
    }
  }

  private async groupBusy(record: RunRecord, state: RunState): Promise<boolean> {
    if (!record.concurrencyGroup || state.startedAt !== undefined || !state.flow.concurrency) return false;
    const active = await this.store.listRuns({ concurrencyGroup: record.concurrencyGroup, status: ["running", "waiting", "queued"] });
    const others = active.filter((r) => r.id !== record.id);
    if (state.flow.concurrency.on_conflict === "cancel_running") {
      for (const other of others.filter((r) => r.status !== "queued")) {
        await this.appendSignal(other.id, [{ type: "run_cancel_requested", at: this.now(), by: "concurrency", reason: `superseded by run ${record.id}` }]);
        await this.advance(other.id);
      }
      return false;
    }
    // Queued runs start oldest first: a run waits for running ones and for older queued ones.
    return others.some((r) => r.status !== "queued" || r.createdAt < record.createdAt || (r.createdAt === record.createdAt && r.id < record.id));
  }

  private async wakeGroup(record: RunRecord): Promise<void> {
    if (!record.concurrencyGroup) return;
    const queued = await this.store.listRuns({ concurrencyGroup: record.concurrencyGroup, status: ["queued"] });
    for (const r of queued) await this.store.setWakeAt(r.id, this.now());
  }

  private async execute(state: RunState, turn: Extract<Turn, { kind: "execute" }>, owner: string, currentSeq: () => number): Promise<JournalEvent> {
    const step = turn.step;
    const executor = this.opts.executors.get(step.kind);
    const at = () => this.now();
    if (!executor) {
      return { type: "step_failed", at: at(), step: step.id, attempt: turn.attempt, error: { code: "STEP_FAILED", message: `no executor for step kind '${step.kind}'`, retryable: false } };
    }
    const redact = this.redactorFor(state);
    const controller = new AbortController();
    let timedOut = false;
    const timer = turn.timeoutMs ? setTimeout(() => ((timedOut = true), controller.abort(new SluiceError("STEP_TIMEOUT", "the step passed its timeout"))), turn.timeoutMs) : undefined;
    const heartbeat = setInterval(() => void this.heartbeat(state.id, owner, currentSeq(), controller), Math.max(250, this.leaseMs / 3));
    const connection = (name: string): ResolvedConnection => this.resolveConnection(state, name);
    let github: GitHubApi | undefined;
    const ctx: StepContext = {
      runId: state.id,
      stepId: step.id,
      attempt: turn.attempt,
      idempotencyKey: turn.key,
      effect: turn.effect,
      signal: controller.signal,
      ...(turn.timeoutMs ? { timeoutMs: turn.timeoutMs } : {}),
      release: state.release,
      repo: state.repo,
      ...(state.trigger.issue ? { issue: state.trigger.issue } : {}),
      connection,
      policy: state.config.policy,
      store: this.store,
      get github() {
        return github;
      },
      logger: redactingLogger(this.logger, redact, { run: state.id, step: step.id }),
      now: at,
    };
    github = this.opts.github?.(state.repo, connection, Object.keys(state.config.connections));
    try {
      let params = turn.params;
      if (step.kind === "function" && typeof params.file === "string" && this.opts.readFile) {
        const source = await this.opts.readFile(state.repo, state.release.sha, params.file);
        if (source === undefined) throw new NonRetriableError("NOT_FOUND", `${params.file} does not exist at ${state.release.sha.slice(0, 7)}`);
        params = { ...params, file_source: source };
      }
      // Secrets reach a step only through its connections: a value that spells one (reassembled
      // from parts, say) is not sent anywhere. Callback URLs are handed on as they are.
      const result = await executor.execute(createRedactor(this.opts.secrets.values())(params), ctx);
      const outputs = await this.externalise(redact(result.outputs));
      return { type: "step_succeeded", at: at(), step: step.id, attempt: turn.attempt, outputs };
    } catch (e) {
      if (e instanceof EffectIsWriteError && turn.effect === "read") {
        return { type: "step_reclassified", at: at(), step: step.id, attempt: turn.attempt, effect: "write", reason: redact(e.message) };
      }
      const error = redact(stepErrorOf(e, timedOut, controller.signal.aborted && !timedOut));
      return { type: "step_failed", at: at(), step: step.id, attempt: turn.attempt, error };
    } finally {
      if (timer) clearTimeout(timer);
      clearInterval(heartbeat);
    }
  }

  /** Keeps the lease while a step works, and aborts the step when the run was cancelled. */
  private async heartbeat(id: string, owner: string, seq: number, controller: AbortController): Promise<void> {
    try {
      if (!(await this.store.acquireLease(id, owner, this.now(), this.leaseMs))) {
        this.logger.warn("lease lost while a step works: another worker may take the run over", { run: id });
      }
      const record = await this.store.getRun(id);
      if (record && record.seq > seq) {
        const tail = (await this.store.loadJournal(id)).filter((s) => s.seq > seq);
        if (tail.some((s) => s.event.type === "run_cancel_requested")) controller.abort(new SluiceError("STEP_ABORTED", "the run was cancelled"));
      }
    } catch (e) {
      this.logger.warn("lease heartbeat failed", { run: id, error: String(e) });
    }
  }

  resolveConnection(state: RunState, name: string): ResolvedConnection {
    const conn = state.config.connections[name];
    if (!conn) throw new NonRetriableError("CONNECTION_UNKNOWN", `connection '${name}' is not declared in .github/sluice.yml on the default branch`, { connection: name });
    const envs = conn.environments ?? ["live", "draft"];
    if (!envs.includes(state.release.kind)) {
      throw new NonRetriableError("CONNECTION_UNKNOWN", `connection '${name}' is not available to ${state.release.kind} runs (environments: ${envs.join(", ")})`, { connection: name });
    }
    let secretValue: string | undefined;
    if (conn.secret) {
      secretValue = this.opts.secrets.get(conn.secret);
      if (secretValue === undefined) {
        throw new NonRetriableError("SECRET_MISSING", `secret ${conn.secret} of connection '${name}' is not set (SLUICE_SECRET_${conn.secret} or 'sluice secrets set ${conn.secret}')`, { connection: name, secret: conn.secret });
      }
    }
    return { ...conn, name, ...(secretValue !== undefined ? { secretValue } : {}) };
  }

  private async externalise(outputs: Record<string, unknown>): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(outputs)) {
      const text = typeof v === "string" ? v : JSON.stringify(v);
      if (text !== undefined && Buffer.byteLength(text) > RESOURCE_THRESHOLD) {
        out[k] = await this.resources.put(Buffer.from(text), typeof v === "string" ? "text/plain; charset=utf-8" : "application/json");
      } else out[k] = v;
    }
    return out;
  }

  /** Appends signal events whatever the run's lease (a worker folds them in on its next turn). */
  async appendSignal(id: string, events: JournalEvent[]): Promise<void> {
    for (let tries = 0; ; tries++) {
      const record = await this.store.getRun(id);
      if (!record) throw new SluiceError("RUN_NOT_FOUND", `no run '${id}'`, { run: id });
      try {
        await this.store.append(id, record.seq, events, { status: record.status, wakeAt: this.now() });
        return;
      } catch (e) {
        if (!(e instanceof ConflictError) || tries > 50) throw e;
      }
    }
  }

  /** Claims due runs and advances each; returns how many were advanced. */
  async workOnce(limit = 8): Promise<number> {
    const owner = this.leaseOwner();
    const due = await this.store.claimDue(owner, this.now(), this.leaseMs, limit);
    for (const run of due) {
      const busy = this.flights.get(run.id);
      if (busy) {
        // An advance of this process works the run already: it goes round once more instead.
        busy.again = true;
        await this.store.releaseLease(run.id, owner);
        continue;
      }
      try {
        await this.fly(run.id, owner);
      } catch (e) {
        this.logger.error("run turn failed", { run: run.id, error: e instanceof Error ? e.stack ?? e.message : String(e) });
        await this.store.setWakeAt(run.id, this.now() + 5_000).catch(() => undefined);
      }
    }
    return due.length;
  }

  /** Works until `signal` aborts: claims due runs, sleeps until the next wake-up (at most `pollMs`). */
  async work(signal: AbortSignal, pollMs = 1_000): Promise<void> {
    while (!signal.aborted) {
      const n = await this.workOnce();
      if (n > 0) continue;
      const next = await this.store.nextWakeAt(this.now());
      const delay = Math.max(10, Math.min(pollMs, next === null ? pollMs : next - this.now()));
      // An abort ends the pause early; the loop condition then stops the worker.
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
  }
}

/** A concurrency group, evaluated once from the inputs and trigger: fixed for the run's life. */
function evaluateGroup(template: string, state: RunState): string {
  try {
    return String(evaluateTemplate(template, exprContext(state)));
  } catch (e) {
    throw new SluiceError("FLOW_INVALID", `concurrency.group could not be evaluated: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function redactingLogger(base: Logger, redact: <T>(v: T) => T, bound: Record<string, unknown>): Logger {
  const wrap = (level: keyof Logger) => (msg: string, meta?: Record<string, unknown>) => base[level](redact(msg), redact({ ...bound, ...meta }));
  return { debug: wrap("debug"), info: wrap("info"), warn: wrap("warn"), error: wrap("error") };
}

/** The secret part of each of the run's callback URLs. */
function callbackTokens(state: RunState): string[] {
  return Object.values(state.callbacks).map((url) => url.slice(url.lastIndexOf("/") + 1));
}

/** The pull request a run was started from (a command or event on one), if any. */
function pullRequestOf(trigger: Trigger): number | undefined {
  const event = trigger.event as { issue?: { pull_request?: unknown }; pull_request?: { number?: unknown } } | undefined;
  if (trigger.issue === undefined || !event) return undefined;
  return event.issue?.pull_request || event.pull_request?.number === trigger.issue ? trigger.issue : undefined;
}

/** A pull request's head SHA, or undefined when there is no such pull request. */
async function pullRequestHead(api: GitHubApi, repo: string, number: number): Promise<string | undefined> {
  const [owner, name] = repo.split("/");
  try {
    const r = await api.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", { owner, repo: name, pull_number: number });
    const sha = r.data?.head?.sha;
    return typeof sha === "string" ? sha : undefined;
  } catch (e) {
    if ((e as { status?: unknown })?.status === 404) return undefined;
    throw new SluiceError("GITHUB_UNAVAILABLE", `could not read the head of pull request #${number} of ${repo}: ${e instanceof Error ? e.message : String(e)}`, { repo, pull_request: number });
  }
}
