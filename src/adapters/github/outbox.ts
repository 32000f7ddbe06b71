/**
 * The GitHub outbox: the app's own writes that are not a run's check run (replies, reactions,
 * the `sluice / validate` and `sluice / release` check runs, the sticky comment of a pull
 * request) are recorded in the store when a delivery is handled, and sent from there by a loop
 * of every process, at GitHub's pace (SPEC §5 "The GitHub budget"). Handling a delivery never
 * waits for GitHub's writes, and a write is not lost when GitHub or the process fails.
 *
 * Each write is one kv entry (namespace `sluice:github-outbox`) whose key orders it by priority,
 * then by time: `<rank>:<time>:<sequence>:<id>`. A process claims an entry by compare-and-set on its
 * version (a lease, so a dead process's entries are taken over) and deletes it once GitHub took
 * the write. Writes of one lane (an issue or pull request) are sent one at a time, in key order,
 * so the answers to the commands of one issue come in order and two updates of a sticky comment
 * never race. A write that fails is tried again with a growing backoff, after the hold GitHub
 * asked for; one GitHub refuses for good (the issue is gone, a 422) is dropped and logged. An
 * acknowledgement (a reaction, the link to a run started from an issue) is skipped when the
 * budget is under pressure, or when it could not be sent within `ackTtlMs`; nothing else is.
 *
 * A write retried after its process died half-way is not made twice: a reply carries a hidden
 * marker and is looked for first, a check run is found by its `external_id`, the sticky comment
 * by its marker; a second identical reaction is a no-op on GitHub.
 */
import { randomUUID } from "node:crypto";
import { ConflictError, RetryAfterError, SluiceError } from "../../core/errors.js";
import type { KvEntry, RunStore } from "../../ports/run-store.js";
import type { GitHubApi, Logger } from "../../ports/step-executor.js";
import { metrics as defaultMetrics, type SluiceMetrics } from "../server/metrics.js";
import { chunk, fitSummary, type Annotation } from "./annotations.js";
import { WRITE_PRIORITIES, WriteSkipped, type WritePriority } from "./budget.js";
import { prioritized } from "./client.js";
import { errorText, listAll, splitRepo } from "./deps.js";
import { wakeable } from "./inbox.js";

export const OUTBOX_NAMESPACE = "sluice:github-outbox";

export type Reaction = "+1" | "-1" | "eyes" | "confused" | "rocket";

export interface CheckRunInput {
  name: string;
  headSha: string;
  conclusion: "success" | "failure" | "neutral" | "action_required";
  title: string;
  summary: string;
  text?: string;
  annotations: Annotation[];
  detailsUrl?: string;
}

/** A write of the outbox. */
export type OutboxWrite =
  | { kind: "comment"; repo: string; issue: number; body: string }
  | { kind: "reaction"; repo: string; comment_id: number; content: Reaction }
  | { kind: "check_run"; repo: string; check: CheckRunInput }
  | { kind: "sticky"; repo: string; issue: number; body: string; marker: string };

interface Entry {
  id: string;
  write: OutboxWrite;
  priority: WritePriority;
  lane?: string;
  /** When it was recorded (epoch ms). */
  at: number;
  attempts: number;
  not_before?: number;
  claim?: { owner: string; until: number };
  last_error?: string;
  /** A check run created for this write, and how many batches of annotations it has. */
  check_run?: { id: number; batches: number };
  /** Recorded once by a caller's id (EnqueueOptions.once): it may have been sent by an earlier entry. */
  once?: true;
}

export interface EnqueueOptions {
  priority: WritePriority;
  /** Writes of one lane (an issue, a pull request) are sent one at a time, in order. */
  lane?: string;
  /**
   * A write recorded once by this id (a gate's announcement, say), with the time it was first
   * recorded: enqueuing it again while it waits is a no-op, and a comment is looked for (by its
   * marker) before it is posted, so a process that died between enqueuing and noting it never
   * makes GitHub show it twice.
   */
  once?: { id: string; at: number };
}

export interface Outbox {
  /** Records a write; it is sent by the outbox's loop (of any process on the store). */
  enqueue(write: OutboxWrite, opts: EnqueueOptions): Promise<string>;
  wake(): void;
  /** Claims what is due and sends it, waiting for it; returns how many writes were sent or settled. */
  drainOnce(): Promise<number>;
  start(signal: AbortSignal): Promise<void>;
}

export interface OutboxOptions {
  store: RunStore;
  /** The budgeted API of a repository's installation; undefined when the app is not installed there. */
  apiFor(repo: string): Promise<GitHubApi | undefined>;
  logger: Logger;
  /** Who claims (a process id): a claim is leased to one owner. */
  owner: string;
  clock?: () => number;
  metrics?: SluiceMetrics;
  /** Writes sent at once. Default 8. */
  concurrency?: number;
  /** How often the store is looked at when nothing wakes the loop (other processes' writes). Default 1 s. */
  pollMs?: number;
  /** How long a claim lasts before another process may take the write over. Default 5 minutes. */
  leaseMs?: number;
  /** An acknowledgement not sent by then (from when it was recorded) is dropped. Default 10 minutes. */
  ackTtlMs?: number;
}

const BACKOFF_BASE_MS = 5_000;
const BACKOFF_MAX_MS = 15 * 60_000;

/** Orders writes recorded in the same millisecond by one process. */
let sequence = 0;

function keyOf(e: Pick<Entry, "priority" | "at" | "id" | "once">): string {
  // A write recorded once has the same key whoever records it, so a second record conflicts.
  sequence = e.once ? 0 : (sequence + 1) % 1_000_000;
  return `${WRITE_PRIORITIES.indexOf(e.priority)}:${String(e.at).padStart(15, "0")}:${String(sequence).padStart(6, "0")}:${e.id}`;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown } | null)?.status;
  return typeof s === "number" ? s : undefined;
}

/** The hidden marker a reply carries, so that a retry finds it instead of posting it twice. */
function replyMarker(id: string): string {
  return `<!-- sluice:reply ${id} -->`;
}

/** Whether GitHub refused a write for good (no retry can make it succeed). */
function refusedForGood(e: unknown): boolean {
  const s = statusOf(e);
  return s !== undefined && s >= 400 && s < 500 && s !== 408 && s !== 429 && !(e instanceof RetryAfterError);
}

export function createOutbox(opts: OutboxOptions): Outbox {
  const { store, logger } = opts;
  const clock = opts.clock ?? Date.now;
  const m = opts.metrics ?? defaultMetrics;
  const concurrency = opts.concurrency ?? 8;
  const pollMs = opts.pollMs ?? 1_000;
  const leaseMs = opts.leaseMs ?? 5 * 60_000;
  const ackTtlMs = opts.ackTtlMs ?? 10 * 60_000;
  const inFlight = new Map<string, Promise<void>>();
  const waker = wakeable();
  const wake = waker.wake;
  let nextDue = Number.POSITIVE_INFINITY;

  async function enqueue(write: OutboxWrite, o: EnqueueOptions): Promise<string> {
    const entry: Entry = {
      id: o.once?.id ?? randomUUID(),
      write,
      priority: o.priority,
      ...(o.lane ? { lane: o.lane } : {}),
      at: o.once?.at ?? clock(),
      attempts: 0,
      ...(o.once ? { once: true as const } : {}),
    };
    try {
      await store.kvSet(OUTBOX_NAMESPACE, keyOf(entry), entry, { now: clock(), ifVersion: 0 });
    } catch (e) {
      if (!(o.once && e instanceof ConflictError)) throw e;
    }
    wake();
    return entry.id;
  }

  /** Writes the entry back if it still holds our claim; false when someone else has it now. */
  async function update(key: string, version: number, entry: Entry): Promise<number | undefined> {
    try {
      return (await store.kvSet(OUTBOX_NAMESPACE, key, entry, { now: clock(), ifVersion: version })).version;
    } catch (e) {
      if (e instanceof ConflictError) return undefined;
      throw e;
    }
  }

  async function send(entry: Entry, key: string, version: { v: number }): Promise<void> {
    const w = entry.write;
    const base = await opts.apiFor(w.repo);
    if (!base) throw new SluiceError("NOT_FOUND", `the app is not installed on ${w.repo}`, { repo: w.repo });
    // A claim lasts leaseMs: the budget's wait must end well before it lapses.
    const api = prioritized(base, entry.priority, { maxWaitMs: leaseMs / 4 });
    const where = splitRepo(w.repo);
    switch (w.kind) {
      case "reaction":
        await api.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { ...where, comment_id: w.comment_id, content: w.content });
        return;
      case "comment": {
        const marker = replyMarker(entry.id);
        if ((entry.attempts > 1 || entry.once) && (await ownComment(api, w.repo, w.issue, marker, entry.at))) return;
        await api.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { ...where, issue_number: w.issue, body: `${w.body}\n\n${marker}` });
        return;
      }
      case "sticky":
        await upsertSticky(api, w.repo, w.issue, w.body, w.marker);
        return;
      case "check_run":
        await writeCheckRun(api, entry, key, version);
        return;
    }
  }

  /** A comment the app wrote with `marker` since `since` (a reply of an attempt that died half-way). */
  async function ownComment(api: GitHubApi, repo: string, issue: number, marker: string, since: number): Promise<boolean> {
    const me = await api.identity?.();
    if (!me) return false;
    const comments = await listAll<{ body?: string; user?: { login?: string } }>(api, "GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {
      ...splitRepo(repo),
      issue_number: issue,
      since: new Date(since - 60_000).toISOString(),
    });
    return comments.some((c) => (c.body ?? "").includes(marker) && c.user?.login === me.login);
  }

  /**
   * A completed check run with its annotations, 50 a request (GitHub's limit): the create holds
   * the first 50, an update each further 50. What was done is recorded in the entry after each
   * request, so a retry neither creates the check run again nor sends a batch twice (GitHub
   * appends the annotations of every update).
   */
  async function writeCheckRun(api: GitHubApi, entry: Entry, key: string, version: { v: number }): Promise<void> {
    const w = entry.write as Extract<OutboxWrite, { kind: "check_run" }>;
    const c = w.check;
    const where = splitRepo(w.repo);
    const batches = chunk(c.annotations);
    const output = (annotations: Annotation[] | undefined) => ({
      title: c.title.slice(0, 255),
      summary: fitSummary(c.summary),
      ...(c.text ? { text: fitSummary(c.text) } : {}),
      ...(annotations && annotations.length ? { annotations } : {}),
    });
    const externalId = `outbox:${entry.id}`;
    let done = entry.check_run;
    if (!done && entry.attempts > 1) {
      const found = await findCheckRun(api, w.repo, c.headSha, c.name, externalId);
      if (found !== undefined) done = { id: found, batches: 1 };
    }
    if (!done) {
      const created = await api.request("POST /repos/{owner}/{repo}/check-runs", {
        ...where,
        name: c.name,
        head_sha: c.headSha,
        status: "completed",
        conclusion: c.conclusion,
        completed_at: new Date(clock()).toISOString(),
        external_id: externalId,
        ...(c.detailsUrl ? { details_url: c.detailsUrl } : {}),
        output: output(batches[0]),
      });
      done = { id: Number(created.data.id), batches: 1 };
    }
    for (let i = done.batches; i < batches.length; i++) {
      entry.check_run = done;
      const v = await update(key, version.v, entry);
      if (v === undefined) throw new SluiceError("STATE_CONFLICT", "another process took this check run over");
      version.v = v;
      await api.request("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", { ...where, check_run_id: done.id, output: output(batches[i]) });
      done = { id: done.id, batches: i + 1 };
    }
  }

  async function settle(key: string, version: { v: number }, entry: Entry, e: unknown): Promise<void> {
    const kind = entry.write.kind;
    const now = clock();
    if (e instanceof WriteSkipped || (entry.priority === "ack" && now - entry.at > ackTtlMs)) {
      m.githubOutbox.inc({ kind, outcome: "skipped" });
      logger.info("acknowledgement skipped: GitHub's write budget is under pressure", { kind, repo: entry.write.repo });
      await store.kvDelete(OUTBOX_NAMESPACE, key);
      return;
    }
    if (refusedForGood(e) || (e instanceof SluiceError && e.code === "NOT_FOUND")) {
      m.githubOutbox.inc({ kind, outcome: "dropped" });
      logger.error("GitHub refused a write for good; it is dropped", { kind, repo: entry.write.repo, attempts: entry.attempts, error: errorText(e) });
      await store.kvDelete(OUTBOX_NAMESPACE, key);
      return;
    }
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(20, Math.max(0, entry.attempts - 1)));
    const wait = e instanceof RetryAfterError ? Math.max(1_000, e.retryAfterMs) : backoff;
    m.githubOutbox.inc({ kind, outcome: "retried" });
    const { claim: _claim, ...rest } = entry;
    const next: Entry = { ...rest, not_before: now + wait, last_error: errorText(e) };
    (e instanceof RetryAfterError ? logger.info : logger.warn)("a GitHub write failed; it will be tried again", {
      kind,
      repo: entry.write.repo,
      attempts: entry.attempts,
      retry_at: new Date(now + wait).toISOString(),
      error: errorText(e),
    });
    nextDue = Math.min(nextDue, now + wait);
    await update(key, version.v, next);
  }

  async function run(key: string, version: { v: number }, entry: Entry): Promise<void> {
    try {
      if (entry.priority === "ack" && clock() - entry.at > ackTtlMs) throw new WriteSkipped("skipped: not sent within its time");
      await send(entry, key, version);
      m.githubOutbox.inc({ kind: entry.write.kind, outcome: "sent" });
      await store.kvDelete(OUTBOX_NAMESPACE, key);
    } catch (e) {
      await settle(key, version, entry, e).catch((err: unknown) => logger.warn("the GitHub outbox could not record a failed write", { error: errorText(err) }));
    }
  }

  /** Claims what is due, in key order, one write per lane, and starts it; returns the tasks. */
  async function claim(): Promise<Promise<void>[]> {
    const free = concurrency - inFlight.size;
    if (free <= 0) return [];
    const now = clock();
    nextDue = Number.POSITIVE_INFINITY;
    const entries: KvEntry[] = await store.kvList(OUTBOX_NAMESPACE, now);
    const lanes = new Set<string>();
    const due: { key: string; version: number; entry: Entry }[] = [];
    for (const kv of entries) {
      const entry = kv.value as Entry;
      // The first write of a lane holds the lane, sent or not: the next one waits for it.
      if (entry.lane !== undefined) {
        if (lanes.has(entry.lane)) continue;
        lanes.add(entry.lane);
      }
      if (inFlight.has(kv.key)) continue;
      if (entry.claim && entry.claim.until > now) {
        nextDue = Math.min(nextDue, entry.claim.until);
        continue;
      }
      if (entry.not_before !== undefined && entry.not_before > now) {
        nextDue = Math.min(nextDue, entry.not_before);
        continue;
      }
      due.push({ key: kv.key, version: kv.version, entry });
      if (due.length >= free) break;
    }
    const tasks: Promise<void>[] = [];
    for (const d of due) {
      const claimed: Entry = { ...d.entry, attempts: d.entry.attempts + 1, claim: { owner: opts.owner, until: now + leaseMs } };
      const v = await update(d.key, d.version, claimed);
      if (v === undefined) continue; // another process claimed it first
      const task = run(d.key, { v }, claimed).finally(() => {
        inFlight.delete(d.key);
        wake();
      });
      inFlight.set(d.key, task);
      tasks.push(task);
    }
    return tasks;
  }

  async function drainOnce(): Promise<number> {
    const tasks = await claim();
    await Promise.all(tasks);
    return tasks.length;
  }

  async function start(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let started = 0;
      try {
        started = (await claim()).length;
      } catch (e) {
        logger.error("the GitHub outbox could not be read", { error: errorText(e) });
      }
      if (started > 0 && inFlight.size < concurrency) continue;
      await waker.sleep(Math.max(10, Math.min(pollMs, nextDue - clock())), signal);
    }
    await Promise.allSettled([...inFlight.values()]);
  }

  return { enqueue, wake, drainOnce, start };
}

/** A check run of `name` on `sha` with this external id, paging through the commit's check runs of that name. */
export async function findCheckRun(api: GitHubApi, repo: string, sha: string, name: string, externalId: string): Promise<number | undefined> {
  for (let page = 1; ; page++) {
    const res = await api.request("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", { ...splitRepo(repo), ref: sha, check_name: name, filter: "all", per_page: 100, page });
    const runs = (res.data?.check_runs ?? []) as { id: number; external_id?: string | null }[];
    const hit = runs.find((r) => r.external_id === externalId);
    if (hit) return hit.id;
    if (runs.length < 100) return undefined;
  }
}

/** Updates the app's comment that carries the marker, or creates it. */
async function upsertSticky(api: GitHubApi, repo: string, issue: number, body: string, marker: string): Promise<void> {
  // Only the app's own comment is the sticky one: another bot's (or a person's) copy of the marker is not.
  const me = await api.identity?.();
  const comments = await listAll<{ id: number; body?: string; user?: { login?: string } }>(api, "GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {
    ...splitRepo(repo),
    issue_number: issue,
  });
  const mine = me ? comments.find((c) => (c.body ?? "").includes(marker) && c.user?.login === me.login) : undefined;
  if (mine) {
    if (mine.body !== body) await api.request("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", { ...splitRepo(repo), comment_id: mine.id, body });
    return;
  }
  await api.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { ...splitRepo(repo), issue_number: issue, body });
}
