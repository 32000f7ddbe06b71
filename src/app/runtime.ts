/**
 * The thin imperative shell around the pure core: claim → load → fold → decide → act →
 * append, in a loop, under a lease. Each append names the sequence number it expects, so two
 * workers racing on one run cannot both win; a step's start is journaled before it runs, so a
 * crash can never make a completed step run again.
 *
 * One commit per step: a step's result, what the engine decides after it, and the next step's
 * start are one append. The state is folded incrementally, never re-read from the journal while
 * an advance holds the run. A commit is fsynced only where a power loss could cost more than
 * re-running reads: when it holds a write's start or a write's result (SPEC §4).
 *
 * Leases are short and kept by one heartbeat per process for every run it holds, so the runs of
 * a process that dies are free again within `leaseMs`.
 */
import { createHash, randomBytes } from "node:crypto";
import { exprContext } from "../core/engine/context.js";
import { decide, type Turn } from "../core/engine/decide.js";
import { bindHead } from "../core/engine/gates.js";
import type { JournalEvent, Release, StepErrorInfo, Trigger } from "../core/engine/events.js";
import { fold, foldInto, type RunState } from "../core/engine/state.js";
import { ConflictError, EffectIsWriteError, NonRetriableError, RetryAfterError, SluiceError, assertNever } from "../core/errors.js";
import { evaluateTemplate } from "../core/expr/expressions.js";
import type { Config, Flow, StepKind } from "../core/flow/types.js";
import { createRedactor, type Redactor } from "../core/redact.js";
import type { ResourceStore } from "../ports/resource-store.js";
import type { KvWrite, RunRecord, RunStore } from "../ports/run-store.js";
import type { Secrets } from "../ports/secrets.js";
import type { GitHubApi, Logger, ResolvedConnection, StepContext, StepExecutor } from "../ports/step-executor.js";

/** Outputs larger than this are kept as resources (SPEC §1). */
export const RESOURCE_THRESHOLD = 64 * 1024;

/**
 * How long a run stays leased to a process without a heartbeat: a dead process's runs are free
 * again this long after its last one (the heartbeat renews every third of it).
 */
export const DEFAULT_LEASE_MS = 5_000;

/** How many runs one process advances at once (a step that waits on I/O holds one slot). */
export const DEFAULT_CONCURRENCY = 64;

export interface RuntimeOptions {
  store: RunStore;
  resources: ResourceStore;
  executors: ReadonlyMap<StepKind, StepExecutor>;
  secrets: Secrets;
  logger: Logger;
  mode: "local" | "github";
  clock?: () => number;
  workerId?: string;
  /** How long a lease lasts without a heartbeat (default 5 s). */
  leaseMs?: number;
  /** How many runs `work` advances at once (default 64). */
  concurrency?: number;
  /** Base URL for callback URLs and, unless `runPages` is false, run pages. */
  publicUrl?: string;
  /** Whether something serves run pages at `publicUrl` (the server does; a local worker serves only callbacks). */
  runPages?: boolean;
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

/**
 * The id of the run that something which must start one run at most (a webhook delivery's flow)
 * starts: the same from every process and every attempt, so a second creation is refused by the
 * store instead of starting the run twice. Time-sortable like any run id.
 */
export function keyedRunId(at: number, key: string): string {
  return at.toString(36).padStart(9, "0") + createHash("sha256").update(key).digest("hex").slice(0, 6);
}

/** A lease this process holds on a run: renewed by the heartbeat while an advance works. */
interface Lease {
  id: string;
  owner: string;
  /** The journal's last seq as this advance committed it (a higher one: someone else appended). */
  seq: number;
  /** Aborts the step in flight, if one is: when the heartbeat finds the run cancelled. */
  step?: AbortController;
  /** Freed by the advance's last commit. */
  released?: boolean;
}

/** What an executed attempt leaves to commit: its result event and, for a kv write, the write. */
interface Attempt {
  event: JournalEvent;
  /** The turn that ran it: an atomic attempt whose write lost its key is run again as it was. */
  turn: Extract<Turn, { kind: "execute" }>;
  step: string;
  attempt: number;
  /** A write's result: its commit is fsynced (a lost result would make the write's outcome unknown). */
  durable: boolean;
  kv?: KvWrite;
}

/**
 * The redactors of an advance, made once: what the run records (secrets and its callback tokens),
 * and what reaches a step (secrets only: callback URLs are handed on).
 */
interface Redactors {
  record: Redactor;
  params: Redactor;
}

/**
 * A step whose effect commits with its result: a kv write, which the store applies in the append
 * that records the step's result. An attempt of one left without a result did nothing.
 */
function isAtomic(kind: StepKind): boolean {
  return kind === "kv";
}

/** The store gave up reaching its database (past the operator's deadline): the process should stop. */
export function isStoreUnavailable(e: unknown): boolean {
  return e instanceof SluiceError && e.code === "STORE_ERROR" && e.details.unavailable === true;
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
  private readonly concurrency: number;
  private readonly listeners = new Set<Listener>();
  /** The advance in flight per run in this process (single-flight). */
  private readonly flights = new Map<string, { again: boolean; done: Promise<boolean> }>();
  private leases = 0;
  /** The leases this process holds, by run: one heartbeat renews them all. */
  private readonly held = new Map<string, Lease>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RuntimeOptions) {
    this.store = opts.store;
    this.resources = opts.resources;
    // The engine's own log lines (a failed turn's stack, say) are redacted like everything else.
    this.logger = redactingLogger(opts.logger, (v) => createRedactor(opts.secrets.values())(v), {});
    this.mode = opts.mode;
    this.clock = opts.clock ?? Date.now;
    this.workerId = opts.workerId ?? `w-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    this.concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
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

  /** Creates a run (queued, due now) and returns its id; with `id`, a second creation is a ConflictError. */
  async createRun(req: NewRunRequest, opts: { id?: string } = {}): Promise<string> {
    const now = this.now();
    const id = opts.id ?? newRunId(now);
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
      ...(this.opts.publicUrl && this.opts.runPages !== false ? { run_url: `${base}/runs/${id}` } : {}),
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
          const lease = this.hold({ id, owner, seq: 0 });
          try {
            await this.turns(id, lease);
            advanced = true;
          } finally {
            this.unhold(lease);
            if (!lease.released) await this.store.releaseLease(id, owner);
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

  private hold(lease: Lease): Lease {
    this.held.set(lease.id, lease);
    if (!this.heartbeat) {
      this.heartbeat = setInterval(() => void this.beat(), Math.max(100, Math.floor(this.leaseMs / 3)));
      // The heartbeat never keeps a process alive by itself: the work it guards does.
      this.heartbeat.unref();
    }
    return lease;
  }

  private unhold(lease: Lease): void {
    if (this.held.get(lease.id) === lease) this.held.delete(lease.id);
    if (this.held.size === 0 && this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
  }

  /**
   * Renews every lease this process holds, in one store call, and aborts a step whose run was
   * cancelled meanwhile (its journal moved past what this process committed).
   */
  private async beat(): Promise<void> {
    const leases = [...this.held.values()];
    if (leases.length === 0) return;
    try {
      const kept = new Map((await this.store.renewLeases(leases, this.now(), this.leaseMs)).map((r) => [r.id, r.seq]));
      for (const lease of leases) {
        const seq = kept.get(lease.id);
        if (seq === undefined) {
          if (this.held.get(lease.id) === lease) this.logger.warn("lease lost: another worker may take the run over", { run: lease.id });
          continue;
        }
        if (!lease.step || seq <= lease.seq) continue;
        const tail = (await this.store.loadJournal(lease.id)).filter((s) => s.seq > lease.seq);
        if (tail.some((s) => s.event.type === "run_cancel_requested")) lease.step.abort(new SluiceError("STEP_ABORTED", "the run was cancelled"));
      }
    } catch (e) {
      this.logger.warn("lease heartbeat failed", { error: String(e) });
    }
  }

  /**
   * The turns of one advance. Events the engine decides are folded into the state at once and
   * committed with the next step's start (or with the run's wait, or its end); a step's result
   * waits for the same commit. So each step costs one commit.
   */
  private async turns(id: string, lease: Lease): Promise<void> {
    let { record, seq, state } = await this.load(id);
    lease.seq = seq;
    const redactors: Redactors = { record: this.redactorFor(state), params: createRedactor(this.opts.secrets.values()) };
    const redact = redactors.record;
    /** Decided and executed events not committed yet, already folded into `state`. */
    let pending: JournalEvent[] = [];
    let durable = false;
    /** The executed attempt whose result is in `pending`. */
    let result: Attempt | undefined;
    const take = (events: JournalEvent[]) => {
      pending.push(...events);
      foldInto(state, events);
    };
    const commit = async (update: { status: RunRecord["status"]; wakeAt: number | null; last?: boolean }): Promise<void> => {
      const events = pending;
      seq = await this.store.append(id, seq, events, {
        status: update.status,
        wakeAt: update.wakeAt,
        durable,
        // Other processes hear of a run when it yields, not at every step of an advance.
        notify: update.last === true && update.wakeAt !== null,
        ...(update.last ? { release: lease.owner } : {}),
        ...(result?.kv ? { kv: result.kv } : {}),
      });
      lease.seq = seq;
      if (update.last) lease.released = true;
      pending = [];
      durable = false;
      result = undefined;
      if (events.length > 0) this.emit(id, events, state);
    };

    for (let guard = 0; guard < 100_000; guard++) {
      const now = this.now();
      try {
        const turn = decide(state, { now, groupBusy: await this.groupBusy(record, state) });
        switch (turn.kind) {
          case "append": {
            const recorded = redact(await this.bindHeads(state, turn.events));
            take(recorded);
            const completed = recorded.find((e) => e.type === "run_completed");
            if (completed?.type === "run_completed") {
              await commit({ status: completed.status, wakeAt: null, last: true });
              await this.wakeGroup(record);
              return;
            }
            continue;
          }
          case "execute": {
            const atomic = isAtomic(turn.step.kind);
            take([{ type: "step_started", at: now, step: turn.step.id, attempt: turn.attempt, key: turn.key, effect: turn.effect, ...(atomic ? { atomic: true as const } : {}) }]);
            // A write's start is durable before the write runs.
            if (turn.effect === "write" && !atomic) durable = true;
            await commit({ status: "running", wakeAt: now });
            const attempt = await this.execute(state, turn, lease, redactors);
            take([attempt.event]);
            durable ||= attempt.durable;
            result = attempt;
            continue;
          }
          case "wait":
            // Records the status and the next wake-up (compare-and-set like any append).
            await commit({ status: turn.status, wakeAt: turn.wakeAt, last: true });
            return;
          case "done":
            // The run had ended when it was loaded: its run_completed commit recorded the status.
            return;
          default:
            assertNever(turn, "turn");
        }
      } catch (e) {
        if (!(e instanceof ConflictError)) {
          await this.saveResult(id, seq, result, now);
          throw e;
        }
        // Someone else appended (a signal, a cancel, another worker): start again from the
        // journal. The result of an attempt still stands if that attempt is still the one in
        // flight; if its kv write lost the key to another writer, the attempt did nothing and
        // runs again as it is (the same attempt: a hot key costs retries, not journal entries).
        const kept = result;
        ({ record, seq, state } = await this.load(id));
        lease.seq = seq;
        pending = [];
        durable = false;
        result = undefined;
        if (kept) {
          if (state.completed || state.steps[kept.step]?.inFlight?.attempt !== kept.attempt) {
            this.logger.warn("attempt superseded by another worker; its result is dropped", { run: id, step: kept.step, attempt: kept.attempt });
            return;
          }
          const again = e.details.kvKey === undefined ? kept : await this.execute(state, kept.turn, lease, redactors);
          take([again.event]);
          durable = again.durable;
          result = again;
        }
      }
    }
  }

  /**
   * An advance failing after a step ran (a GitHub call before a gate, say) still records the
   * step's result, so a write that ran is not left with an unknown outcome.
   */
  private async saveResult(id: string, seq: number, result: Attempt | undefined, now: number): Promise<void> {
    if (!result) return;
    try {
      await this.store.append(id, seq, [result.event], { status: "running", wakeAt: now, durable: result.durable, ...(result.kv ? { kv: result.kv } : {}) });
    } catch (e) {
      this.logger.warn("a step's result could not be recorded after the advance failed", { run: id, step: result.step, error: String(e) });
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

  /** Runs one attempt; what it leaves to commit (never throws for the step's own failure). */
  private async execute(state: RunState, turn: Extract<Turn, { kind: "execute" }>, lease: Lease, redactors: Redactors): Promise<Attempt> {
    const step = turn.step;
    const attempt = (event: JournalEvent, kv?: KvWrite): Attempt => ({
      event,
      turn,
      step: step.id,
      attempt: turn.attempt,
      // A write's result is durable: lost, it would leave the write's outcome unknown. An atomic
      // write's result commits with the write itself, so losing both loses nothing.
      durable: turn.effect === "write" && event.type !== "step_reclassified" && !isAtomic(step.kind),
      ...(kv ? { kv } : {}),
    });
    const executor = this.opts.executors.get(step.kind);
    const at = () => this.now();
    if (!executor) {
      return attempt({ type: "step_failed", at: at(), step: step.id, attempt: turn.attempt, error: { code: "STEP_FAILED", message: `no executor for step kind '${step.kind}'`, retryable: false } });
    }
    const redact = redactors.record;
    const controller = new AbortController();
    lease.step = controller;
    let timedOut = false;
    const timer = turn.timeoutMs ? setTimeout(() => ((timedOut = true), controller.abort(new SluiceError("STEP_TIMEOUT", "the step passed its timeout"))), turn.timeoutMs) : undefined;
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
      const result = await executor.execute(redactors.params(params), ctx);
      const outputs = await this.externalise(redact(result.outputs));
      return attempt({ type: "step_succeeded", at: at(), step: step.id, attempt: turn.attempt, outputs }, result.kv);
    } catch (e) {
      if (e instanceof EffectIsWriteError && turn.effect === "read") {
        return attempt({ type: "step_reclassified", at: at(), step: step.id, attempt: turn.attempt, effect: "write", reason: redact(e.message) });
      }
      const error = redact(stepErrorOf(e, timedOut, controller.signal.aborted && !timedOut));
      return attempt({ type: "step_failed", at: at(), step: step.id, attempt: turn.attempt, error });
    } finally {
      if (timer) clearTimeout(timer);
      lease.step = undefined;
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

  /** Claims up to `limit` due runs and advances them together; returns how many were claimed. */
  async workOnce(limit = this.concurrency): Promise<number> {
    const owner = this.leaseOwner();
    const due = await this.store.claimDue(owner, this.now(), this.leaseMs, limit);
    const failures: unknown[] = [];
    await Promise.all(due.map((run) => this.runClaimed(run.id, owner, (e) => failures.push(e))));
    if (failures.length > 0) throw failures[0];
    return due.length;
  }

  /**
   * Advances a run this process claimed. A run that fails is logged and looked at again in 5 s;
   * `fatal` hears of a store that gave up reaching its database.
   */
  private async runClaimed(id: string, owner: string, fatal: (e: unknown) => void): Promise<void> {
    const busy = this.flights.get(id);
    if (busy) {
      // An advance of this process works the run already: it goes round once more instead.
      busy.again = true;
      await this.store.releaseLease(id, owner).catch(fatal);
      return;
    }
    try {
      await this.fly(id, owner);
    } catch (e) {
      if (isStoreUnavailable(e)) return fatal(e);
      this.logger.error("run turn failed", { run: id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
      await this.store.setWakeAt(id, this.now() + 5_000).catch(() => undefined);
    }
  }

  /**
   * Works until `signal` aborts: claims due runs into free slots (up to `concurrency` advances at
   * once) as they come due, told at once of other processes' wake-ups (the store's `onWake`), and
   * otherwise sleeping until the next wake-up, at most `pollMs`. A failing store is waited out;
   * one that gave up reaching its database (past the deadline) ends the worker with its error.
   */
  async work(signal: AbortSignal, pollMs = 1_000): Promise<void> {
    const running = new Set<Promise<void>>();
    let woken = false;
    let wake: () => void = () => undefined;
    const poke = (): void => {
      woken = true;
      wake();
    };
    let fatal: unknown;
    const stopListening = await this.store.onWake(poke).catch((e: unknown) => {
      this.logger.warn("wake-ups from other processes are not heard; polling instead", { error: String(e) });
      return async () => undefined;
    });
    let backoff = 0;
    try {
      while (!signal.aborted && fatal === undefined) {
        woken = false;
        let next: number | null;
        try {
          const free = this.concurrency - running.size;
          if (free > 0) {
            const owner = this.leaseOwner();
            const due = await this.store.claimDue(owner, this.now(), this.leaseMs, free);
            for (const run of due) {
              const p: Promise<void> = this.runClaimed(run.id, owner, (e) => {
                fatal ??= e;
              }).finally(() => {
                running.delete(p);
                poke();
              });
              running.add(p);
            }
            if (due.length === free) continue;
          }
          next = await this.store.nextWakeAt(this.now());
          backoff = 0;
        } catch (e) {
          if (isStoreUnavailable(e)) throw e;
          backoff = Math.min(Math.max(backoff * 2, 100), 5_000);
          this.logger.error("the worker could not look for due runs; trying again", { error: e instanceof Error ? e.message : String(e), retry_ms: backoff });
          next = this.now() + backoff;
        }
        if (woken) continue;
        const delay = Math.max(0, Math.min(pollMs, next === null ? pollMs : next - this.now()));
        // A wake-up (another process's, or a finished advance's) or an abort ends the pause early.
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            wake = () => undefined;
            resolve();
          };
          const timer = setTimeout(done, delay);
          signal.addEventListener("abort", done);
          wake = done;
        });
      }
      if (fatal !== undefined) throw fatal;
    } finally {
      await Promise.allSettled([...running]);
      await stopListening();
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
