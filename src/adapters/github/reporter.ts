/**
 * Run history as GitHub check runs, through an outbox in the store (SPEC §5 "Run history").
 *
 * find → build → upsert: the store leases the runs whose journal moved past what was reported
 * (one reporter per run across processes sharing the store; the lease is freed when the run is
 * marked reported, or released when this reporter holds it back); each is loaded and folded,
 * built into a check run (check-run-summary.ts), created the first time and updated afterwards,
 * and marked reported up to the seq it showed, with the check run's id and the reporter's
 * bookkeeping kept in the outbox row. All state is in the store, so a restarted process carries
 * on where the last one stopped.
 *
 * Updates are coalesced: a run reported less than `minIntervalMs` ago waits until then, unless
 * it just reached a wait (a gate, a callback) or ended; a run is first reported `minIntervalMs`
 * after it was created (at once when it waits or ended by then), so a quick run's check run is
 * created once, already final. Every call goes through the installation's write budget
 * (budget.ts) at a priority: a run that reached a gate or ended first, progress after. A call
 * the budget cannot make soon (GitHub asked to hold, the window is spent), and a rate limit,
 * set `not_before` on the run; other failures back off exponentially. Nothing is dropped: the
 * outbox row only moves forward once GitHub accepted the update.
 */
import { randomUUID } from "node:crypto";
import { runView, type RunView } from "../../app/run-view.js";
import { fold } from "../../core/engine/state.js";
import { RetryAfterError } from "../../core/errors.js";
import { isTerminal, type RunStore } from "../../ports/run-store.js";
import type { GitHubApi, Logger } from "../../ports/step-executor.js";
import { signedRunLinks, type LinkSigner } from "../server/auth.js";
import { metrics as defaultMetrics, type SluiceMetrics } from "../server/metrics.js";
import { githubError } from "../steps/github-errors.js";
import { WRITE_PRIORITIES, type WritePriority } from "./budget.js";
import { buildCheckRun, effectiveStatus, extrasOf, waitKey, type CheckRunBody } from "./check-run-summary.js";
import { prioritized } from "./client.js";
import { findCheckRun } from "./outbox.js";

export interface ReporterOptions {
  store: RunStore;
  /** The GitHub API of the repository's installation, or undefined (a local repository: nothing to report). */
  githubFor: (repo: string) => GitHubApi | undefined | Promise<GitHubApi | undefined>;
  /** The server's public base URL (run pages, the check runs' details_url). */
  publicUrl: string;
  /**
   * Signs the details_url (and the output links) of each check run, so that whoever sees the
   * check run can open the run's page; each update carries a link good for the signer's lifetime
   * from then. Without it the links are plain (and the page asks for a token).
   */
  links?: LinkSigner;
  logger: Logger;
  clock?: () => number;
  /** A run is updated at most this often, unless it just reached a wait or ended. Default 2000. */
  minIntervalMs?: number;
  /** Runs updated per flush at most. Default 20. */
  batch?: number;
  /** Runs updated at once within a flush. Default 4. */
  parallel?: number;
  /** How often the loop looks at the store when nothing notifies it (runs of other processes). Default 1000. */
  pollMs?: number;
  metrics?: SluiceMetrics;
  /** This reporter's owner id on the outbox leases. Default: a random id per reporter. */
  owner?: string;
  /** How long a run's report lease lasts; a flush stops taking up runs past half of it. Default 60000. */
  leaseMs?: number;
}

export interface Reporter {
  /** Wakes the loop early: the run's journal moved (the runtime calls it after each append). */
  notify(runId: string): void;
  /** Reports what is due now; returns how many runs were brought up to date. */
  flushOnce(): Promise<number>;
  /** Reports until `signal` aborts. */
  start(signal: AbortSignal): Promise<void>;
}

/** What the outbox row of a run holds (`report`). Fields are only ever added. */
export interface ReportData {
  /** The check run showing the run. */
  check_run_id?: number;
  /** A create was attempted and may have succeeded without its id recorded: look it up first. */
  creating?: boolean;
  /** The run's status as last reported (queued … timed_out). */
  status?: string;
  /** What the run waited at when last reported (a gate with its digest, a wait step). */
  wait_key?: string;
  /** When the last update was accepted (epoch ms). */
  reported_at?: number;
  /** Do not call GitHub for this run before this time (epoch ms): a rate limit or a backoff. */
  not_before?: number;
  /** Consecutive failures, for the backoff. */
  failures?: number;
  last_error?: string;
  /** Why the run is not reported (no GitHub installation for its repository). */
  skipped?: string;
  /** Check-run API calls made for this run. */
  calls?: number;
}

const DEFAULT_LEASE_MS = 60_000;
const BACKOFF_BASE_MS = 5_000;
const BACKOFF_MAX_MS = 15 * 60_000;

function dataOf(report: unknown): ReportData {
  return report !== null && typeof report === "object" && !Array.isArray(report) ? { ...(report as ReportData) } : {};
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown } | null)?.status;
  return typeof s === "number" ? s : undefined;
}

function splitRepo(repo: string): { owner: string; repo: string } | undefined {
  const m = /^([^/\s]+)\/([^/\s]+)$/.exec(repo);
  return m ? { owner: m[1]!, repo: m[2]! } : undefined;
}

interface Candidate {
  runId: string;
  repo: string;
  seq: number;
  reportedSeq: number;
  data: ReportData;
}

/** A run due for an update, loaded, with the priority of its update. */
interface Due {
  c: Candidate;
  gh: GitHubApi;
  view: RunView;
  seq: number;
  body: CheckRunBody;
  priority: WritePriority;
}

export function createReporter(opts: ReporterOptions): Reporter {
  const { store, logger } = opts;
  const clock = opts.clock ?? Date.now;
  const minInterval = opts.minIntervalMs ?? 2_000;
  const batch = opts.batch ?? 20;
  const parallel = opts.parallel ?? 4;
  const pollMs = opts.pollMs ?? 1_000;
  const m = opts.metrics ?? defaultMetrics;
  const owner = opts.owner ?? `reporter-${randomUUID()}`;
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  let nextDue = Number.POSITIVE_INFINITY;
  let dirty = false;
  let wake: (() => void) | undefined;
  let running: Promise<number> | undefined;

  async function call<T>(method: "create" | "update" | "find", data: ReportData, fn: () => Promise<T>): Promise<T> {
    data.calls = (data.calls ?? 0) + 1;
    try {
      const out = await fn();
      m.checkRunCalls.inc({ method, outcome: "ok" });
      return out;
    } catch (e) {
      // The budget refused before anything was sent: not a call.
      if ((e as { code?: unknown })?.code === "GITHUB_RATE_LIMITED") {
        data.calls -= 1;
        throw e;
      }
      const s = statusOf(e);
      m.checkRunCalls.inc({ method, outcome: s === 429 || s === 403 ? "rate_limited" : "error" });
      throw e;
    }
  }

  /**
   * A check run this reporter may have created before a crash: the one on the SHA with our name
   * and external id, looked for through every page of the commit's check runs of that name.
   */
  async function find(gh: GitHubApi, repo: string, body: CheckRunBody, data: ReportData): Promise<number | undefined> {
    const counted: GitHubApi = { request: (route, params) => call("find", data, () => gh.request(route, params)) };
    return findCheckRun(counted, repo, body.head_sha, body.name, body.external_id);
  }

  async function load(runId: string): Promise<{ view: RunView; seq: number; body: CheckRunBody } | undefined> {
    const record = await store.getRun(runId);
    if (!record) return undefined;
    const journal = await store.loadJournal(runId);
    const last = journal.at(-1);
    if (!last) return undefined;
    const state = fold(journal.map((s) => s.event));
    const view = runView(record, state);
    const links = opts.links ? { links: signedRunLinks(opts.publicUrl, opts.links, clock()) } : {};
    return { view, seq: last.seq, body: buildCheckRun(view, { publicUrl: opts.publicUrl, extras: extrasOf(state), ...links }) };
  }

  async function upsert(c: Candidate, gh: GitHubApi, view: RunView, body: CheckRunBody, seq: number, now: number): Promise<void> {
    const where = splitRepo(c.repo);
    if (!where) throw new Error(`repository '${c.repo}' is not owner/name`);
    const data = c.data;
    const status = effectiveStatus(view);
    let id = data.check_run_id;
    // A run retried after it ended gets a new check run: a completed check run stays completed.
    if (id !== undefined && data.status && isTerminal(data.status) && !isTerminal(status)) id = undefined;
    if (id !== undefined) {
      const { name: _name, head_sha: _sha, ...patch } = body;
      try {
        await call("update", data, () => gh.request("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", { ...where, check_run_id: id, ...patch }));
      } catch (e) {
        if (statusOf(e) !== 404) throw e;
        logger.warn("check run is gone; creating it again", { run: c.runId, checkRunId: id });
        id = undefined;
      }
    } else if (data.creating) {
      id = await find(gh, c.repo, body, data);
      if (id !== undefined) {
        const { name: _name, head_sha: _sha, ...patch } = body;
        await call("update", data, () => gh.request("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", { ...where, check_run_id: id, ...patch }));
      }
    }
    if (id === undefined) {
      // Record the attempt first: if the process dies after GitHub created the check run, the
      // next attempt finds it instead of creating a second one.
      const first = !data.creating;
      if (first) {
        data.creating = true;
        await store.markReported(c.runId, c.reportedSeq, { ...data }, { keepLease: true });
      }
      let res: Awaited<ReturnType<GitHubApi["request"]>>;
      try {
        res = await call("create", data, () => gh.request("POST /repos/{owner}/{repo}/check-runs", { ...where, ...body }));
      } catch (e) {
        // The budget refused before anything was sent: there is nothing to look for next time.
        if (first && (e as { code?: unknown })?.code === "GITHUB_RATE_LIMITED") delete data.creating;
        throw e;
      }
      id = Number(res.data?.id);
      if (!Number.isSafeInteger(id)) throw new Error("GitHub answered the check-run create without an id");
    }
    const next: ReportData = {
      check_run_id: id,
      status,
      ...(waitKey(view) ? { wait_key: waitKey(view) } : {}),
      reported_at: now,
      calls: data.calls ?? 0,
    };
    await store.markReported(c.runId, seq, next);
  }

  async function failed(c: Candidate, e: unknown, now: number): Promise<void> {
    const err = githubError("check run", e, now);
    const data: ReportData = { ...c.data, last_error: err.message };
    if (err instanceof RetryAfterError) {
      const until = now + Math.max(1_000, err.retryAfterMs);
      data.not_before = until;
      logger.warn("GitHub rate limit on check runs (or the budget holds them); backing off", { run: c.runId, repo: c.repo, retryInMs: until - now, error: err.message });
    } else {
      data.failures = (c.data.failures ?? 0) + 1;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(20, data.failures - 1));
      data.not_before = now + delay;
      logger.error("check run update failed; will retry", { run: c.runId, repo: c.repo, failures: data.failures, retryInMs: delay, error: err.message });
    }
    nextDue = Math.min(nextDue, data.not_before);
    await store.markReported(c.runId, c.reportedSeq, data);
  }

  /**
   * Whether a run is due for an update now, and at which priority; undefined when it is not
   * (coalesced, or backing off), "reported" when it needed no call.
   */
  async function prepare(c: Candidate, now: number): Promise<Due | "reported" | undefined> {
    const data = c.data;
    if (data.not_before !== undefined && data.not_before > now) {
      nextDue = Math.min(nextDue, data.not_before);
      return undefined;
    }
    let gh: GitHubApi | undefined;
    try {
      gh = await opts.githubFor(c.repo);
    } catch (e) {
      await failed(c, e, now);
      return undefined;
    }
    if (!gh) {
      await store.markReported(c.runId, c.seq, { ...data, skipped: `no GitHub installation for ${c.repo}` } satisfies ReportData);
      return "reported";
    }
    const loaded = await load(c.runId);
    if (!loaded) return undefined;
    const status = effectiveStatus(loaded.view);
    const key = waitKey(loaded.view);
    const urgent =
      (isTerminal(status) && data.status !== status) ||
      (status === "waiting" && (data.status !== "waiting" || data.wait_key !== key)) ||
      (data.status !== undefined && isTerminal(data.status) && !isTerminal(status));
    if (!urgent) {
      // Progress: once per interval, the first one an interval after the run was created.
      const since = data.reported_at ?? Date.parse(loaded.view.created_at);
      if (now - since < minInterval) {
        nextDue = Math.min(nextDue, since + minInterval);
        return undefined;
      }
    }
    return { c, gh, view: loaded.view, seq: loaded.seq, body: loaded.body, priority: urgent ? "gate" : "progress" };
  }

  async function report(d: Due, now: number): Promise<boolean> {
    // A claim lasts leaseMs: the budget's wait must end well before it lapses.
    const gh = prioritized(d.gh, d.priority, { maxWaitMs: leaseMs / 4 });
    try {
      await upsert(d.c, gh, d.view, d.body, d.seq, now);
      return true;
    } catch (e) {
      await failed(d.c, e, now);
      return false;
    }
  }

  async function flush(): Promise<number> {
    const now = clock();
    nextDue = Number.POSITIVE_INFINITY;
    // Ask for more than a batch: runs held back by coalescing or a backoff must not starve the rest.
    const rows = await store.claimUnreported(owner, now, leaseMs, Math.max(100, batch * 5));
    const reported = new Set<string>();
    const due: Due[] = [];
    for (const row of rows) {
      if (clock() - now >= leaseMs / 4) {
        nextDue = now;
        break;
      }
      const c: Candidate = { runId: row.runId, repo: row.repo, seq: row.seq, reportedSeq: row.reportedSeq, data: dataOf(row.report) };
      try {
        const d = await prepare(c, now);
        if (d === "reported") reported.add(c.runId);
        else if (d) due.push(d);
      } catch (e) {
        logger.error("reporting a run failed", { run: c.runId, error: e instanceof Error ? e.message : String(e) });
        nextDue = Math.min(nextDue, now + BACKOFF_BASE_MS);
      }
    }
    // Gates and conclusions first; past a batch, the rest waits for the next flush.
    const order = due.map((d, i) => ({ d, i })).sort((a, b) => WRITE_PRIORITIES.indexOf(a.d.priority) - WRITE_PRIORITIES.indexOf(b.d.priority) || a.i - b.i);
    const todo = order.slice(0, batch).map((x) => x.d);
    if (order.length > batch) nextDue = now;
    let next = 0;
    const worker = async () => {
      for (let d = todo[next++]; d; d = todo[next++]) {
        // Past half the lease, the rest is left to the next flush (or another process).
        if (clock() - now >= leaseMs / 2) {
          nextDue = now;
          return;
        }
        try {
          if (await report(d, now)) reported.add(d.c.runId);
        } catch (e) {
          logger.error("reporting a run failed", { run: d.c.runId, error: e instanceof Error ? e.message : String(e) });
          nextDue = Math.min(nextDue, now + BACKOFF_BASE_MS);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
    // A run reported had its lease freed by markReported; any other is released for whoever comes next.
    for (const row of rows) {
      if (reported.has(row.runId)) continue;
      try {
        await store.releaseReport(row.runId, owner);
      } catch (e) {
        logger.warn("releasing a run's report lease failed", { run: row.runId, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return reported.size;
  }

  function flushOnce(): Promise<number> {
    // One flush at a time; a caller arriving during one waits for it, then flushes again.
    const prev = running ?? Promise.resolve(0);
    const next = prev.catch(() => 0).then(() => flush());
    running = next;
    void next.finally(() => {
      if (running === next) running = undefined;
    }).catch(() => undefined);
    return next;
  }

  return {
    notify(_runId: string): void {
      dirty = true;
      wake?.();
    },
    flushOnce,
    async start(signal: AbortSignal): Promise<void> {
      while (!signal.aborted) {
        dirty = false;
        try {
          await flushOnce();
        } catch (e) {
          logger.error("check-run reporter flush failed", { error: e instanceof Error ? e.message : String(e) });
        }
        if (signal.aborted || dirty) continue;
        const delay = Math.max(10, Math.min(pollMs, nextDue - clock()));
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(t);
            signal.removeEventListener("abort", done);
            wake = undefined;
            resolve();
          };
          const t = setTimeout(done, delay);
          signal.addEventListener("abort", done, { once: true });
          wake = done;
        });
      }
    },
  };
}
