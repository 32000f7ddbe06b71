/**
 * One GitHub write budget per installation, kept in the store, so that every process on one
 * database spends the same one (SPEC §5 "The GitHub budget"):
 *
 * - **content-creating requests** (POST, PUT) are counted in sliding windows, 80 a minute and
 *   500 an hour by default: a token spent comes back one window after GitHub answered the
 *   request (the latest moment GitHub can have counted it, so a slow request never lets two
 *   windows' worth through);
 * - **requests in flight** (any method) are capped, across processes;
 * - a **hold** that GitHub asks for (a 403/429 secondary limit with Retry-After, an exhausted
 *   quota until `x-ratelimit-reset`) stops every request of every process until it passes.
 *
 * The state of an installation is one kv entry (namespace `sluice:github-budget`), changed only
 * by compare-and-set on its version: a request is granted in the same atomic step that counts
 * it, and a request that brought a hold is released in the same step that records the hold, so
 * no grant can be made after a hold without seeing it. Each process batches its own requests
 * into one compare-and-set (a turn grants every request that fits), and serves them by priority:
 * gates and conclusions, then replies, then progress, then acknowledgements, which are skipped
 * (not queued) when the budget is under pressure.
 */
import { randomUUID } from "node:crypto";
import { ConflictError, RetryAfterError } from "../../core/errors.js";
import { parseDuration } from "../../core/flow/duration.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import type { SluiceMetrics } from "../server/metrics.js";

export const BUDGET_NAMESPACE = "sluice:github-budget";

/** What a write is for, most important first. */
export const WRITE_PRIORITIES = ["gate", "reply", "progress", "ack"] as const;
export type WritePriority = (typeof WRITE_PRIORITIES)[number];
const RANK: Record<WritePriority, number> = { gate: 0, reply: 1, progress: 2, ack: 3 };

export interface BudgetWindow {
  /** Content-creating requests allowed in any window of `ms`. */
  limit: number;
  ms: number;
}

export interface BudgetConfig {
  /** Content-creating requests per window (GitHub: 80 a minute, 500 an hour). */
  windows: BudgetWindow[];
  /** Requests of any kind in flight at once, per installation, across every process. */
  maxInFlight: number;
  /**
   * The share of each window kept from acknowledgements: an acknowledgement that would leave
   * less than this of any window is skipped, and so is one while a more important write waits.
   */
  ackReserve: number;
}

export const DEFAULT_BUDGET_CONFIG: BudgetConfig = {
  windows: [
    { limit: 80, ms: 60_000 },
    { limit: 500, ms: 3_600_000 },
  ],
  maxInFlight: 20,
  ackReserve: 0.25,
};

/** An acknowledgement not sent because the budget is under pressure (counted, never retried). */
export class WriteSkipped extends Error {
  constructor(message = "skipped: GitHub's write budget is under pressure") {
    super(message);
    this.name = "WriteSkipped";
  }
}

/** A place in flight: release it when GitHub answered, with the hold GitHub asked for, if any. */
export interface Grant {
  release(outcome?: { holdUntil?: number }): void;
}

export interface AcquireOptions {
  /** A content-creating request (POST, PUT): it spends a token of every window. */
  create: boolean;
  priority: WritePriority;
  /** Stops waiting (rejecting with the signal's reason). */
  signal?: AbortSignal;
  /**
   * The longest this caller waits: beyond it the request is refused at once with a
   * RetryAfterError (GITHUB_RATE_LIMITED) saying when to come back. Default: no limit.
   */
  maxWaitMs?: number;
}

export interface BudgetView {
  /** Content-creating requests counted in each window now (answered or in flight). */
  used: number[];
  inFlight: number;
  /** No request before this time (epoch ms); 0 when there is no hold. */
  hold: number;
}

export interface GitHubBudget {
  readonly config: BudgetConfig;
  /** Waits for a place (and a token, for a content-creating request) in the installation's budget. */
  acquire(installation: string, opts: AcquireOptions): Promise<Grant>;
  /** The installation's budget as the store holds it now. */
  view(installation: string): Promise<BudgetView>;
  /** Requests waiting in this process, by priority. */
  waiting(): Record<WritePriority, number>;
  /** Stops the timers; waiters are refused. */
  close(): void;
}

export interface BudgetOptions {
  store: RunStore;
  config?: BudgetConfig;
  clock?: () => number;
  logger?: Logger;
  metrics?: SluiceMetrics;
  /**
   * How long a place in flight is kept for a request that was never released (its process
   * died): then it is freed, and a content-creating one counted as answered then. Keep it above
   * the longest request. Default 2 minutes.
   */
  leaseMs?: number;
  /** How often a waiting process looks at the store again (other processes spend and release). Default 200 ms. */
  pollMs?: number;
}

// ---------------------------------------------------------------- the state in the store

/** One request in flight: when its place lapses, and whether it creates content. */
interface Flight {
  u: number;
  c?: 1;
}

export interface BudgetState {
  /** When content-creating requests were answered, ascending, within the longest window. */
  spent: number[];
  /** No request before this (epoch ms); 0: none. */
  hold: number;
  flight: Record<string, Flight>;
}

export function parseState(value: unknown): BudgetState {
  const v = (value !== null && typeof value === "object" ? value : {}) as Partial<BudgetState>;
  return {
    spent: Array.isArray(v.spent) ? v.spent.filter((t): t is number => typeof t === "number").sort((a, b) => a - b) : [],
    hold: typeof v.hold === "number" ? v.hold : 0,
    flight: v.flight !== null && typeof v.flight === "object" ? { ...v.flight } : {},
  };
}

function insertSorted(list: number[], t: number): void {
  let i = list.length;
  while (i > 0 && (list[i - 1] as number) > t) i--;
  list.splice(i, 0, t);
}

/** Frees the places of requests whose lease lapsed (counted as answered then) and forgets what left every window. */
export function prune(state: BudgetState, now: number, config: BudgetConfig): void {
  for (const [id, f] of Object.entries(state.flight)) {
    if (f.u > now) continue;
    delete state.flight[id];
    if (f.c) insertSorted(state.spent, f.u);
  }
  const longest = Math.max(0, ...config.windows.map((w) => w.ms));
  const from = state.spent.findIndex((t) => t > now - longest);
  state.spent = from < 0 ? [] : state.spent.slice(from);
  if (state.hold <= now) state.hold = 0;
}

function createsInFlight(state: BudgetState): number {
  let n = 0;
  for (const f of Object.values(state.flight)) if (f.c) n++;
  return n;
}

/** Content-creating requests counted in each window at `now`: answered within it, in flight, and `extra` about to be. */
export function windowUse(state: BudgetState, now: number, config: BudgetConfig, extra = 0): number[] {
  const flying = createsInFlight(state) + extra;
  return config.windows.map((w) => state.spent.filter((t) => t > now - w.ms).length + flying);
}

/** Tokens left now in the tightest window. */
export function tokensLeft(state: BudgetState, now: number, config: BudgetConfig, extra = 0): number {
  const used = windowUse(state, now, config, extra);
  return Math.min(...config.windows.map((w, i) => w.limit - (used[i] as number)));
}

/**
 * When one more content-creating request could be granted: every window must have room. A
 * request in flight (or granted now) occupies its window until at least `now + ms`.
 */
export function nextTokenAt(state: BudgetState, now: number, config: BudgetConfig, extra = 0): number {
  let at = now;
  const flying = createsInFlight(state) + extra;
  for (const w of config.windows) {
    const times = [...state.spent.filter((t) => t > now - w.ms), ...Array.from({ length: flying }, () => now)];
    const over = times.length - w.limit;
    if (over < 0) continue;
    at = Math.max(at, (times[over] as number) + w.ms);
  }
  return at;
}

/** Whether an acknowledgement would eat into the reserve of a window. */
export function underPressure(state: BudgetState, now: number, config: BudgetConfig, extra = 0): boolean {
  const used = windowUse(state, now, config, extra + 1);
  return config.windows.some((w, i) => w.limit - (used[i] as number) < Math.ceil(w.limit * config.ackReserve));
}

// ---------------------------------------------------------------- one installation, in one process

interface Waiter {
  create: boolean;
  priority: WritePriority;
  rank: number;
  seq: number;
  deadline: number | undefined;
  signal: AbortSignal | undefined;
  resolve(grant: Grant): void;
  reject(e: unknown): void;
  cleanup(): void;
  settled: boolean;
}

interface Resolved {
  store: RunStore;
  config: BudgetConfig;
  clock: () => number;
  logger: Logger | undefined;
  metrics: SluiceMetrics | undefined;
  leaseMs: number;
  pollMs: number;
}

class InstallationBudget {
  private readonly waiters: Waiter[] = [];
  /** Places to free at the next turn: when GitHub answered, and the hold it asked for. */
  private readonly releases = new Map<string, { at: number; hold: number }>();
  /** A hold this process learnt of, obeyed at once even before the store has it. */
  private localHold = 0;
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;

  constructor(
    private readonly key: string,
    private readonly o: Resolved,
  ) {}

  acquire(opts: AcquireOptions): Promise<Grant> {
    if (this.closed) return Promise.reject(new Error("the GitHub budget is closed"));
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    return new Promise<Grant>((resolve, reject) => {
      const w: Waiter = {
        create: opts.create,
        priority: opts.priority,
        rank: RANK[opts.priority],
        seq: this.seq++,
        deadline: opts.maxWaitMs !== undefined ? this.o.clock() + opts.maxWaitMs : undefined,
        signal: opts.signal,
        resolve,
        reject,
        cleanup: () => undefined,
        settled: false,
      };
      if (opts.signal) {
        const signal = opts.signal;
        const onAbort = () => this.settle(w, undefined, signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        w.cleanup = () => signal.removeEventListener("abort", onAbort);
      }
      this.waiters.push(w);
      this.kick();
    });
  }

  waitingByPriority(into: Record<WritePriority, number>): void {
    for (const w of this.waiters) into[w.priority]++;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of [...this.waiters]) this.settle(w, undefined, new Error("the GitHub budget is closed"));
  }

  private settle(w: Waiter, grant: Grant | undefined, error?: unknown): void {
    if (w.settled) return;
    w.settled = true;
    w.cleanup();
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
    if (grant) w.resolve(grant);
    else w.reject(error);
  }

  private grantFor(id: string): Grant {
    let released = false;
    return {
      release: (outcome) => {
        if (released) return;
        released = true;
        const hold = outcome?.holdUntil ?? 0;
        if (hold > this.localHold) {
          this.localHold = hold;
          this.o.metrics?.githubHolds.inc();
          this.o.logger?.warn("GitHub asked to hold requests; every writer waits", { installation: this.key, until: new Date(hold).toISOString() });
        }
        this.releases.set(id, { at: this.o.clock(), hold });
        this.kick();
      },
    };
  }

  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    void this.pump();
  }

  private async pump(): Promise<void> {
    this.running = true;
    let wakeAt: number | undefined;
    try {
      for (;;) {
        this.again = false;
        if (!this.waiters.length && !this.releases.size) {
          wakeAt = undefined;
          break;
        }
        const turn = await this.turn();
        if (turn === "conflict") continue;
        wakeAt = turn;
        if (!this.again) break;
      }
    } catch (e) {
      // The store did not answer: those waiting now are refused (their callers retry), the
      // places to free are kept for the next turn.
      this.o.logger?.warn("the GitHub budget could not be read or written", { installation: this.key, error: e instanceof Error ? e.message : String(e) });
      for (const w of [...this.waiters]) this.settle(w, undefined, e);
      wakeAt = this.releases.size ? this.o.clock() + this.o.pollMs : undefined;
    } finally {
      this.running = false;
    }
    if (this.closed) return;
    if (this.again) {
      this.kick();
      return;
    }
    if (wakeAt !== undefined && (this.waiters.length || this.releases.size)) {
      const delay = Math.max(0, Math.min(wakeAt - this.o.clock(), this.o.pollMs));
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.kick();
      }, delay);
      this.timer.unref?.();
    }
  }

  /** One compare-and-set turn; returns when to look again, or "conflict" to look at once. */
  private async turn(): Promise<number | "conflict"> {
    const { store, config, clock, leaseMs, pollMs } = this.o;
    const entry = await store.kvGet(BUDGET_NAMESPACE, this.key, clock());
    const now = clock();
    const state = parseState(entry?.value);
    prune(state, now, config);
    const applied = [...this.releases.entries()];
    for (const [id, r] of applied) {
      const f = state.flight[id];
      if (f) {
        delete state.flight[id];
        if (f.c) insertSorted(state.spent, r.at);
      }
      if (r.hold > state.hold) state.hold = r.hold;
    }
    const hold = Math.max(state.hold, this.localHold);
    const grants: [Waiter, string][] = [];
    const skipped: Waiter[] = [];
    // The waiters of this turn (more may come while it writes: the next turn sees them).
    const queue = [...this.waiters].sort((a, b) => a.rank - b.rank || a.seq - b.seq);
    let next = Number.POSITIVE_INFINITY;
    if (hold > now) {
      next = hold;
    } else {
      let places = config.maxInFlight - Object.keys(state.flight).length;
      let extra = 0;
      let blocked = Number.POSITIVE_INFINITY;
      for (const w of queue) {
        if (places <= 0) {
          // A place frees when a request of this process is answered (that kicks a turn) or
          // when another process's is: look again soon.
          next = Math.min(next, now + pollMs);
          break;
        }
        if (w.create) {
          if (w.priority === "ack" && (blocked < Number.POSITIVE_INFINITY || underPressure(state, now, config, extra))) {
            skipped.push(w);
            continue;
          }
          if (blocked <= w.rank || tokensLeft(state, now, config, extra) <= 0) {
            // A less important write never overtakes a more important one for a token.
            blocked = Math.min(blocked, w.rank);
            next = Math.min(next, nextTokenAt(state, now, config, extra));
            continue;
          }
          extra++;
        }
        const id = randomUUID().slice(0, 13);
        state.flight[id] = w.create ? { u: now + leaseMs, c: 1 } : { u: now + leaseMs };
        places--;
        grants.push([w, id]);
      }
    }
    if (grants.length || applied.length) {
      try {
        await store.kvSet(BUDGET_NAMESPACE, this.key, state, { now, ifVersion: entry?.version ?? 0 });
      } catch (e) {
        if (e instanceof ConflictError) return "conflict";
        throw e;
      }
      for (const [id] of applied) this.releases.delete(id);
    }
    for (const [w, id] of grants) {
      const grant = this.grantFor(id);
      // A caller that gave up while the grant was being recorded frees its place at once.
      if (w.settled) grant.release();
      else this.settle(w, grant);
    }
    for (const w of skipped) {
      this.o.metrics?.githubWritesSkipped.inc({ priority: w.priority });
      this.settle(w, undefined, new WriteSkipped());
    }
    for (const w of queue) {
      if (!w.settled && w.deadline !== undefined && next !== Number.POSITIVE_INFINITY && next > w.deadline) {
        const ms = Math.max(0, next - now);
        this.settle(
          w,
          undefined,
          new RetryAfterError("GITHUB_RATE_LIMITED", `GitHub's budget for this installation lets no request through for ${Math.ceil(ms / 1000)} s${hold > now ? " (GitHub asked to hold)" : ""}`, ms, {
            installation: this.key,
          }),
        );
      }
    }
    return next;
  }
}

/** The budget of every installation this process talks to, kept in the store. */
export function createBudget(opts: BudgetOptions): GitHubBudget {
  const config = opts.config ?? DEFAULT_BUDGET_CONFIG;
  checkConfig(config);
  const resolved: Resolved = {
    store: opts.store,
    config,
    clock: opts.clock ?? Date.now,
    logger: opts.logger,
    metrics: opts.metrics,
    leaseMs: opts.leaseMs ?? 120_000,
    pollMs: opts.pollMs ?? 200,
  };
  const budgets = new Map<string, InstallationBudget>();
  const of = (installation: string) => {
    let b = budgets.get(installation);
    if (!b) {
      b = new InstallationBudget(installation, resolved);
      budgets.set(installation, b);
    }
    return b;
  };
  return {
    config,
    acquire: (installation, o) => of(installation).acquire(o),
    async view(installation) {
      const now = resolved.clock();
      const state = parseState((await opts.store.kvGet(BUDGET_NAMESPACE, installation, now))?.value);
      prune(state, now, config);
      return { used: windowUse(state, now, config), inFlight: Object.keys(state.flight).length, hold: state.hold };
    },
    waiting() {
      const out: Record<WritePriority, number> = { gate: 0, reply: 0, progress: 0, ack: 0 };
      for (const b of budgets.values()) b.waitingByPriority(out);
      return out;
    },
    close() {
      for (const b of budgets.values()) b.close();
    },
  };
}

function checkConfig(c: BudgetConfig): void {
  const bad = (what: string) => {
    throw new RangeError(`GitHub budget: ${what}`);
  };
  if (!c.windows.length) bad("at least one window is needed");
  for (const w of c.windows) {
    if (!Number.isSafeInteger(w.limit) || w.limit < 1) bad(`a window's limit is a whole number of requests, 1 or more (got ${w.limit})`);
    if (!Number.isSafeInteger(w.ms) || w.ms < 1) bad(`a window is a duration of 1 ms or more (got ${w.ms})`);
  }
  if (!Number.isSafeInteger(c.maxInFlight) || c.maxInFlight < 1) bad(`requests in flight is a whole number, 1 or more (got ${c.maxInFlight})`);
  if (!(c.ackReserve >= 0 && c.ackReserve < 1)) bad(`the acknowledgements' reserve is a share from 0 to below 1 (got ${c.ackReserve})`);
}

/**
 * The budget from the server's environment (GitHub Enterprise Server may set its own limits):
 * `SLUICE_GITHUB_WRITES` is a list of content-creating requests per window, `80/1m,500/1h` by
 * default; `SLUICE_GITHUB_IN_FLIGHT` the requests in flight at once (20). Problems are listed
 * for ENV_INVALID.
 */
export function readBudgetEnv(env: NodeJS.ProcessEnv): { config: BudgetConfig; problems: string[] } {
  const problems: string[] = [];
  let windows = DEFAULT_BUDGET_CONFIG.windows;
  const writes = env.SLUICE_GITHUB_WRITES?.trim();
  if (writes) {
    const parsed: BudgetWindow[] = [];
    for (const part of writes.split(",").map((p) => p.trim())) {
      const m = /^([0-9]+)\/([0-9]+(?:ms|s|m|h|d))$/.exec(part);
      if (!m || Number(m[1]) < 1 || parseDuration(m[2] as string) < 1) {
        problems.push(`SLUICE_GITHUB_WRITES is a list of requests per window such as 80/1m,500/1h; '${part}' is not one`);
        continue;
      }
      parsed.push({ limit: Number(m[1]), ms: parseDuration(m[2] as string) });
    }
    if (parsed.length) windows = parsed;
  }
  let maxInFlight = DEFAULT_BUDGET_CONFIG.maxInFlight;
  const inFlight = env.SLUICE_GITHUB_IN_FLIGHT?.trim();
  if (inFlight) {
    maxInFlight = Number(inFlight);
    if (!/^[0-9]+$/.test(inFlight) || maxInFlight < 1 || maxInFlight > 100) {
      problems.push(`SLUICE_GITHUB_IN_FLIGHT is the number of requests to GitHub in flight at once, from 1 to 100 (GitHub allows 100), not '${inFlight}'`);
      maxInFlight = DEFAULT_BUDGET_CONFIG.maxInFlight;
    }
  }
  return { config: { ...DEFAULT_BUDGET_CONFIG, windows, maxInFlight }, problems };
}
