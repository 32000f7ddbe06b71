/**
 * Gates that reach people (issue 9): when a gate opens, escalates, or is an hour from its
 * deadline, Sluice comments on the run's issue or pull request mentioning the approvers in
 * force (users as @login, teams as @org/slug) with the evidence and the ways to decide, and
 * posts to the policy's notification webhook (`policy.notify: {connection}`, Slack-compatible).
 *
 * The reminder is scheduled here, in the shell, not in the engine: it changes nothing in the
 * run (no decision, no state), so it needs no journal event; a scan of the waiting runs (every
 * `scanMs`, and at once when a run's events open or escalate a gate) finds what is due from the
 * journal and the clock, after a restart too.
 *
 * Each announcement is done once across every process on the store: its record in kv
 * (namespace `sluice:gate-notices`, keyed by run, step, the gate's opening and what is said) is
 * claimed by compare-and-set with a lease, then the comment is recorded in the GitHub outbox at
 * gate priority with a fixed id (never lost: the outbox retries it; never twice: a second record
 * is a no-op and the comment's marker is looked for before posting), then the webhook is posted
 * (with the announcement's key as Idempotency-Key), then the record is marked done. A process
 * that dies half-way leaves a lapsed claim that the next scan takes over.
 *
 * A gate that names nobody (only a permission) gets no comment: there is nobody to mention, and
 * the run's check run already shows it on the commit (SPEC §5: a reply comes only where a check
 * run cannot). The webhook, when configured, is told of every gate.
 */
import { createHash } from "node:crypto";
import { tally } from "../../core/engine/decide.js";
import { approversAt } from "../../core/engine/gates.js";
import type { GateInfo } from "../../core/engine/events.js";
import type { GateState, RunState, StepState } from "../../core/engine/state.js";
import { ConflictError } from "../../core/errors.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger, ResolvedConnection } from "../../ports/step-executor.js";
import { notifyExecutor } from "../steps/notify.js";
import { checkRunName, clipChars, mdBlock, mdCode, mdText } from "./check-run-summary.js";
import { errorText, laneOf } from "./deps.js";
import { wakeable } from "./inbox.js";
import type { Outbox } from "./outbox.js";
import { isGitHubRepo } from "../../core/namespaces.js";

export const NOTICES_NAMESPACE = "sluice:gate-notices";

/** How long before a gate's deadline the reminder goes out. */
export const REMINDER_BEFORE_MS = 60 * 60_000;
/** Evidence longer than this (characters or lines) is folded in a <details> block. */
const FOLD_CHARS = 800;
const FOLD_LINES = 15;
/** A comment's evidence stops here (GitHub takes 65,536 characters a comment). */
const EVIDENCE_CHARS = 50_000;

export type NoticeKind = "opened" | "escalated" | "reminder";

export interface Notice {
  /** Unique per run, step, opening of the gate and what is said. */
  key: string;
  kind: NoticeKind;
  step: string;
  level: number;
}

/** What is due now for the run's open gates (pure). */
export function noticesDue(state: RunState, now: number): Notice[] {
  if (state.completed) return [];
  const out: Notice[] = [];
  for (const s of Object.values(state.steps)) {
    const g = s.gate;
    if (!g || s.settled || s.status !== "waiting") continue;
    const base = `${state.id}:${s.id}:${g.openedAt}`;
    // Only the level in force is announced: it names everyone who may decide now.
    out.push(g.level > 0 ? { key: `${base}:L${g.level}`, kind: "escalated", step: s.id, level: g.level } : { key: `${base}:L0`, kind: "opened", step: s.id, level: 0 });
    const deadline = g.info.deadline;
    // A gate shorter than the reminder's lead time is announced once, when it opens.
    if (deadline !== null && deadline - g.openedAt > REMINDER_BEFORE_MS && now >= deadline - REMINDER_BEFORE_MS && now < deadline) {
      out.push({ key: `${base}:reminder`, kind: "reminder", step: s.id, level: g.level });
    }
  }
  return out;
}

/** The people to mention: the approvers in force, else the policy's floor (who must approve anyway). */
export function mentionsOf(info: GateInfo, level: number): string[] {
  const current = approversAt(info, level);
  const named = (a: { users?: string[]; teams?: string[] } | undefined) => [...(a?.users ?? []), ...(a?.teams ?? [])];
  const who = named(current).length ? current : info.floor;
  const logins = [...(who?.users ?? []).map((u) => `@${u}`), ...(who?.teams ?? []).map((t) => `@${t}`)];
  return [...new Set(logins)];
}

/** The issue or pull request a gate is announced in: where the run started, else the pull request the gate names. */
export function announcedIn(state: RunState, info: GateInfo): number | undefined {
  return state.trigger.issue ?? info.pull_request ?? info.head?.pull_request;
}

/** Text shown as Markdown that mentions nobody: a zero-width space after each `@` (the flow's text is not a way to ping people). */
function quiet(s: string): string {
  return mdText(s).replace(/@/g, "@\u200b");
}

function headline(kind: NoticeKind, g: GateState): string {
  const what = g.info.kind === "unknown_outcome" ? "A decision is needed" : "Approval needed";
  if (kind === "escalated") return `${what} (escalated, level ${g.level})`;
  if (kind === "reminder") return `${what}: the deadline is in less than an hour`;
  return what;
}

function evidenceText(v: unknown): { text: string; lang: string } {
  if (typeof v === "string") return { text: v, lang: /^(---|\+\+\+|@@|diff --git) /m.test(v) ? "diff" : "" };
  return { text: JSON.stringify(v, null, 2) ?? String(v), lang: "json" };
}

/**
 * The comment: mentions, what waits, the evidence (in code blocks, so nothing in it mentions
 * anyone or renders as Markdown; folded when long) and the three ways to decide.
 */
export function noticeComment(state: RunState, s: StepState, kind: NoticeKind, pageUrl: string | undefined): string {
  const g = s.gate!;
  const info = g.info;
  const digest12 = info.digest.slice(0, 12);
  // As the engine counts them: distinct people, on the current digest.
  const { approvedBy, min } = tally(s);
  const approved = approvedBy.length;
  const lines = [
    `### ⏸️ ${headline(kind, g)}: ${quiet(clipChars(info.title, 200))}`,
    "",
    `${mentionsOf(info, g.level).join(" ")}: run ${mdCode(state.id)} of flow ${mdCode(state.flow.name)} waits at step ${mdCode(s.id)} ` +
      `for ${min} approval${min === 1 ? "" : "s"} (${approved} so far)${info.deadline !== null ? `, until ${new Date(info.deadline).toISOString()}` : ""}.`,
  ];
  if (info.summary) lines.push("", `> ${quiet(clipChars(info.summary, 1_000))}`);
  let budget = EVIDENCE_CHARS;
  info.evidence.forEach((v, i) => {
    const e = evidenceText(v);
    const text = clipChars(e.text, Math.max(200, budget));
    budget -= text.length;
    const block = mdBlock(text, e.lang);
    const long = text.length > FOLD_CHARS || text.split("\n").length > FOLD_LINES;
    lines.push("", long ? `<details><summary>Evidence ${i + 1} (${text.split("\n").length} lines)</summary>\n\n${block}\n\n</details>` : block);
  });
  lines.push(
    "",
    `**To decide**, comment ${mdCode(`/approve ${state.id} ${digest12}`)} or ${mdCode(`/reject ${state.id} <reason>`)} here, ` +
      `press **Approve** or **Reject** on the check run ${mdCode(checkRunName(state.flow.name, state.release.kind))}` +
      `${pageUrl ? `, or open [the run's page](${pageUrl})` : ""}. An approval counts only for digest ${mdCode(digest12)}.`,
  );
  return lines.join("\n");
}

/** The webhook's message: Slack-compatible `{text}`, with no secret (the webhook URL is never in it). */
export function noticeText(state: RunState, s: StepState, kind: NoticeKind, pageUrl: string | undefined): string {
  const g = s.gate!;
  const who = mentionsOf(g.info, g.level);
  return [
    `${headline(kind, g)}: ${clipChars(g.info.title, 200)}`,
    `Run ${state.id} of ${state.flow.name} in ${state.repo} waits at step ${s.id}.`,
    who.length ? `Approvers: ${who.join(", ")}` : `Approvers: anyone with ${approversAt(g.info, g.level).permission ?? "write"} permission`,
    ...(g.info.deadline !== null ? [`Deadline: ${new Date(g.info.deadline).toISOString()}`] : []),
    `Digest: ${g.info.digest.slice(0, 12)}`,
    ...(pageUrl ? [pageUrl] : []),
  ].join("\n");
}

interface NoticeRecord {
  /** When the announcement was first claimed (the outbox's time for its comment). */
  at: number;
  /** A claim in progress, until then. */
  until?: number;
  commented?: true;
  posted?: true;
  done?: true;
}

export interface GateNoticesOptions {
  store: RunStore;
  runtime: {
    load(id: string): Promise<{ state: RunState }>;
    resolveConnection(state: RunState, name: string): ResolvedConnection;
  };
  outbox: Pick<Outbox, "enqueue">;
  logger: Logger;
  /** The run page's link (signed on a server), or undefined where nothing serves it. */
  pageUrl?: (runId: string) => string | undefined;
  clock?: () => number;
  /** How often waiting runs are looked at for reminders and lapsed claims. Default 1 minute. */
  scanMs?: number;
  /** How long a claim holds before another process takes it over. Default 2 minutes. */
  leaseMs?: number;
  /** How long a webhook post may take. Default 30 s. */
  webhookTimeoutMs?: number;
}

export interface GateNotices {
  /** Announces what is due for one run (after its events). */
  announce(state: RunState): Promise<void>;
  /** Looks at every waiting run once; returns how many announcements were made. */
  scanOnce(): Promise<number>;
  /** A run's events changed its gates: look at it soon. */
  wake(runId: string): void;
  start(signal: AbortSignal): Promise<void>;
}

export function createGateNotices(opts: GateNoticesOptions): GateNotices {
  const { store, logger } = opts;
  const clock = opts.clock ?? Date.now;
  const scanMs = opts.scanMs ?? 60_000;
  const leaseMs = opts.leaseMs ?? 2 * 60_000;
  const waker = wakeable();
  const pending = new Set<string>();

  async function claim(key: string, now: number): Promise<{ record: NoticeRecord; version: number } | undefined> {
    const found = await store.kvGet(NOTICES_NAMESPACE, key, now);
    const prior = found?.value as NoticeRecord | undefined;
    if (prior?.done || (prior?.until !== undefined && prior.until > now)) return undefined;
    const record: NoticeRecord = { ...prior, at: prior?.at ?? now, until: now + leaseMs };
    try {
      const e = await store.kvSet(NOTICES_NAMESPACE, key, record, { now, ifVersion: found?.version ?? 0 });
      return { record, version: e.version };
    } catch (e) {
      if (e instanceof ConflictError) return undefined; // another process claimed it first
      throw e;
    }
  }

  async function postWebhook(state: RunState, s: StepState, notice: Notice, connection: string, text: string): Promise<void> {
    const signal = AbortSignal.timeout(opts.webhookTimeoutMs ?? 30_000);
    await notifyExecutor.execute(
      { webhook: { connection, text } },
      {
        runId: state.id,
        stepId: s.id,
        attempt: 1,
        idempotencyKey: `gate-notice:${notice.key}`,
        effect: "write",
        signal,
        timeoutMs: opts.webhookTimeoutMs ?? 30_000,
        release: state.release,
        repo: state.repo,
        connection: (name) => opts.runtime.resolveConnection(state, name),
        policy: state.config.policy,
        store,
        logger,
        now: clock,
      },
    );
  }

  async function announceOne(state: RunState, notice: Notice): Promise<boolean> {
    const s = state.steps[notice.step]!;
    const info = s.gate!.info;
    const issue = announcedIn(state, info);
    const comment = issue !== undefined && isGitHubRepo(state.repo) && mentionsOf(info, s.gate!.level).length > 0;
    const connection = state.config.policy.notify?.connection;
    if (!comment && !connection) return false;
    const now = clock();
    const claimed = await claim(notice.key, now);
    if (!claimed) return false;
    let { record, version } = claimed;
    const save = async (next: NoticeRecord): Promise<void> => {
      version = (await store.kvSet(NOTICES_NAMESPACE, notice.key, next, { now: clock(), ifVersion: version })).version;
      record = next;
    };
    const page = opts.pageUrl?.(state.id);
    if (comment && !record.commented) {
      const id = `gate-${createHash("sha256").update(notice.key).digest("hex").slice(0, 24)}`;
      await opts.outbox.enqueue(
        { kind: "comment", repo: state.repo, issue: issue!, body: noticeComment(state, s, notice.kind, page) },
        { priority: "gate", lane: laneOf(state.repo, issue!), once: { id, at: record.at } },
      );
      await save({ ...record, commented: true });
    }
    if (connection && !record.posted) {
      try {
        await postWebhook(state, s, notice, connection, noticeText(state, s, notice.kind, page));
      } catch (e) {
        // The claim lapses and a later scan tries the webhook again; the comment is not repeated.
        logger.warn("the gate's notification webhook failed; it will be tried again", { run: state.id, step: s.id, connection, error: errorText(e) });
        return false;
      }
      await save({ ...record, posted: true });
    }
    const { until: _until, ...rest } = record;
    await save({ ...rest, done: true });
    logger.info("gate announced", { run: state.id, step: s.id, notice: notice.kind, level: notice.level, ...(comment ? { issue } : {}), ...(connection ? { webhook: connection } : {}) });
    return true;
  }

  async function announceState(state: RunState): Promise<number> {
    let n = 0;
    for (const notice of noticesDue(state, clock())) {
      try {
        if (await announceOne(state, notice)) n++;
      } catch (e) {
        if (e instanceof ConflictError) continue; // another process took the claim over
        logger.warn("a gate could not be announced; it will be tried again", { run: state.id, step: notice.step, error: errorText(e) });
      }
    }
    return n;
  }

  async function scanOnce(): Promise<number> {
    const ids = [...pending];
    pending.clear();
    let n = 0;
    const runs = await store.listRuns({ status: ["waiting"] });
    for (const id of new Set([...ids, ...runs.map((r) => r.id)])) {
      const { state } = await opts.runtime.load(id);
      n += await announceState(state);
    }
    return n;
  }

  async function start(signal: AbortSignal): Promise<void> {
    let last = 0;
    while (!signal.aborted) {
      try {
        if (clock() - last >= scanMs) {
          last = clock();
          await scanOnce();
        } else {
          const ids = [...pending];
          pending.clear();
          for (const id of ids) await announceState((await opts.runtime.load(id)).state);
        }
      } catch (e) {
        logger.error("gate announcements could not be read", { error: errorText(e) });
      }
      await waker.sleep(Math.max(10, scanMs - (clock() - last)), signal);
    }
  }

  return {
    announce: async (state) => void (await announceState(state)),
    scanOnce,
    wake(runId) {
      pending.add(runId);
      waker.wake();
    },
    start,
  };
}
