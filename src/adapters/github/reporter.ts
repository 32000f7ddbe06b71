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
 * it just reached a wait (a gate, a callback) or ended. Rate limits (403/429 with Retry-After or
 * an exhausted quota) set `not_before` on the run and hold the owner's other runs in this
 * process; other failures back off exponentially. Nothing is dropped: the outbox row only moves
 * forward once GitHub accepted the update.
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
import { buildCheckRun, effectiveStatus, extrasOf, waitKey, type CheckRunBody } from "./check-run-summary.js";

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

export function createReporter(opts: ReporterOptions): Reporter {
  const { store, logger } = opts;
  const clock = opts.clock ?? Date.now;
  const minInterval = opts.minIntervalMs ?? 2_000;
  const batch = opts.batch ?? 20;
  const pollMs = opts.pollMs ?? 1_000;
  const m = opts.metrics ?? defaultMetrics;
  const owner = opts.owner ?? `reporter-${randomUUID()}`;
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  /** Owners whose installation hit a rate limit, held in this process until then. */
  const held = new Map<string, number>();
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
      const s = statusOf(e);
      m.checkRunCalls.inc({ method, outcome: s === 429 || s === 403 ? "rate_limited" : "error" });
      throw e;
    }
  }

  /** A check run this reporter may have created before a crash: the latest one on the SHA with our name and external id. */
  async function find(gh: GitHubApi, where: { owner: string; repo: string }, body: CheckRunBody, data: ReportData): Promise<number | undefined> {
    const res = await call("find", data, () =>
      gh.request("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", { ...where, ref: body.head_sha, check_name: body.name, filter: "all", per_page: 100 }),
    );
    const runs = (res.data?.check_runs ?? []) as { id: number; external_id?: string | null }[];
    return runs.find((r) => r.external_id === body.external_id)?.id;
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
      id = await find(gh, where, body, data);
      if (id !== undefined) {
        const { name: _name, head_sha: _sha, ...patch } = body;
        await call("update", data, () => gh.request("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", { ...where, check_run_id: id, ...patch }));
      }
    }
    if (id === undefined) {
      // Record the attempt first: if the process dies after GitHub created the check run, the
      // next attempt finds it instead of creating a second one.
      if (!data.creating) {
        data.creating = true;
        await store.markReported(c.runId, c.reportedSeq, { ...data }, { keepLease: true });
      }
      const res = await call("create", data, () => gh.request("POST /repos/{owner}/{repo}/check-runs", { ...where, ...body }));
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
      const account = c.repo.split("/")[0] ?? c.repo;
      held.set(account, Math.max(held.get(account) ?? 0, until));
      logger.warn("GitHub rate limit on check runs; backing off", { run: c.runId, repo: c.repo, retryInMs: until - now });
    } else {
      data.failures = (c.data.failures ?? 0) + 1;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(20, data.failures - 1));
      data.not_before = now + delay;
      logger.error("check run update failed; will retry", { run: c.runId, repo: c.repo, failures: data.failures, retryInMs: delay, error: err.message });
    }
    nextDue = Math.min(nextDue, data.not_before);
    await store.markReported(c.runId, c.reportedSeq, data);
  }

  async function handle(c: Candidate, now: number): Promise<boolean> {
    const data = c.data;
    if (data.not_before !== undefined && data.not_before > now) {
      nextDue = Math.min(nextDue, data.not_before);
      return false;
    }
    const account = c.repo.split("/")[0] ?? c.repo;
    const hold = held.get(account);
    if (hold !== undefined && hold > now) {
      nextDue = Math.min(nextDue, hold);
      return false;
    }
    let gh: GitHubApi | undefined;
    try {
      gh = await opts.githubFor(c.repo);
    } catch (e) {
      await failed(c, e, now);
      return false;
    }
    if (!gh) {
      await store.markReported(c.runId, c.seq, { ...data, skipped: `no GitHub installation for ${c.repo}` } satisfies ReportData);
      return true;
    }
    const loaded = await load(c.runId);
    if (!loaded) return false;
    const status = effectiveStatus(loaded.view);
    const key = waitKey(loaded.view);
    const urgent =
      data.reported_at === undefined ||
      (isTerminal(status) && data.status !== status) ||
      (status === "waiting" && (data.status !== "waiting" || data.wait_key !== key)) ||
      (data.status !== undefined && isTerminal(data.status) && !isTerminal(status));
    if (!urgent && now - (data.reported_at ?? 0) < minInterval) {
      nextDue = Math.min(nextDue, (data.reported_at ?? 0) + minInterval);
      return false;
    }
    try {
      await upsert(c, gh, loaded.view, loaded.body, loaded.seq, now);
      return true;
    } catch (e) {
      await failed(c, e, now);
      return false;
    }
  }

  async function flush(): Promise<number> {
    const now = clock();
    nextDue = Number.POSITIVE_INFINITY;
    for (const [account, until] of held) if (until <= now) held.delete(account);
    // Ask for more than a batch: runs held back by coalescing or a backoff must not starve the rest.
    const rows = await store.claimUnreported(owner, now, leaseMs, Math.max(100, batch * 5));
    let done = 0;
    for (const row of rows) {
      let reported = false;
      // Past a batch, or half the lease, the rest is left to the next flush (or another process).
      if (done >= batch || clock() - now >= leaseMs / 2) {
        nextDue = now;
      } else {
        const c: Candidate = { runId: row.runId, repo: row.repo, seq: row.seq, reportedSeq: row.reportedSeq, data: dataOf(row.report) };
        try {
          reported = await handle(c, now);
          if (reported) done++;
        } catch (e) {
          logger.error("reporting a run failed", { run: c.runId, error: e instanceof Error ? e.message : String(e) });
          nextDue = Math.min(nextDue, now + BACKOFF_BASE_MS);
        }
      }
      // A run reported had its lease freed by markReported; any other is released for whoever comes next.
      if (!reported) {
        try {
          await store.releaseReport(row.runId, owner);
        } catch (e) {
          logger.warn("releasing a run's report lease failed", { run: row.runId, error: e instanceof Error ? e.message : String(e) });
        }
      }
    }
    return done;
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
