/**
 * One recorded delivery → its handlers. Knows nothing about HTTP (the intake recorded the
 * delivery). A delivery is handled in the stages that apply to it (a command, a draft, a
 * release, a decision, a run waiting for the event, a flow it triggers); one that concerns none
 * is done without a write. Each finished stage is noted in the store (kv `sluice:deliveries`),
 * so a delivery tried again after a failure does not repeat the stages that already took effect
 * (a command is not run twice).
 *
 * A new comment or a submitted review is handled once by its own id, whatever the delivery id
 * it comes under (SPEC §5): the first delivery to claim the id (kv `sluice:commands`) handles
 * it, and any other delivery of it does nothing. GitHub's signature covers the body, not the
 * `X-GitHub-Delivery` header, so the same signed `/approve` under a fresh delivery id would
 * otherwise count again.
 */
import { ConflictError, RetryAfterError } from "../../core/errors.js";
import type { Delivery } from "../../ports/run-store.js";
import { handleIssueComment, isCommandComment } from "./comment-commands.js";
import { leaseDelivery } from "./delivery-lease.js";
import { laneOf, type GitHubDeps } from "./deps.js";
import { handlePullRequest, isDraftEvent } from "./drafts.js";
import { anyEventWaits, anyTriggerFor, completeEventWaits, startTriggeredFlows } from "./event-triggers.js";
import { handleCheckRun, handleReview, isDecisionReview, isRunAction } from "./gate-events.js";
import { handlePush, isReleasePush } from "./release-check.js";
import { SCHEDULE_EVENT, handleScheduleTick, type ScheduleTick } from "./scheduler.js";

export const DELIVERIES_NAMESPACE = "sluice:deliveries";
const COMMANDS_NAMESPACE = "sluice:commands";
const STAGES_TTL_MS = 14 * 24 * 3600_000;

/** A stage of a delivery: it `applies` when the delivery may concern what it handles. */
type Stage = { name: string; applies: () => boolean | Promise<boolean>; run: () => Promise<unknown> };

function stagesOf(deps: GitHubDeps, d: Delivery): Stage[] {
  const payload = d.payload as any;
  if (d.event === SCHEDULE_EVENT) return [{ name: "schedule", applies: () => true, run: () => handleScheduleTick(deps, payload as ScheduleTick) }];
  const repo = payload?.repository?.full_name;
  if (typeof repo !== "string") return [];
  deps.installations.remember(repo, payload?.installation?.id);
  const specific: Stage[] = [];
  switch (d.event) {
    case "push":
      specific.push({ name: "release", applies: () => isReleasePush(payload), run: () => handlePush(deps, payload) });
      break;
    case "pull_request":
      specific.push({ name: "draft", applies: () => isDraftEvent(payload), run: () => handlePullRequest(deps, payload) });
      break;
    case "issue_comment":
      specific.push({ name: "command", applies: () => isCommandComment(payload), run: () => handleIssueComment(deps, payload) });
      break;
    case "pull_request_review":
      specific.push({ name: "review", applies: () => isDecisionReview(payload), run: () => handleReview(deps, payload) });
      break;
    case "check_run":
      specific.push({ name: "check_run", applies: () => isRunAction(payload), run: () => handleCheckRun(deps, payload) });
      break;
    default:
      break;
  }
  return [
    ...specific,
    { name: "waits", applies: () => anyEventWaits(deps, repo), run: () => completeEventWaits(deps, repo, d.event, payload) },
    { name: "triggers", applies: () => anyTriggerFor(deps, repo, d.event, payload), run: () => startTriggeredFlows(deps, repo, d.event, payload) },
  ];
}

/**
 * What a delivery must be handled in order with, or undefined when nothing: the deliveries of
 * one issue or pull request (its commands, reviews, pushes to it) one after another, the pushes
 * of one repository one after another, the check-run events of one run one after another.
 * Everything else runs alongside, so one busy issue never holds back another's runs.
 */
export function deliveryKey(d: Delivery): string | undefined {
  const p = d.payload as {
    repository?: { full_name?: unknown };
    issue?: { number?: unknown };
    pull_request?: { number?: unknown };
    number?: unknown;
    check_run?: { external_id?: unknown };
  } | null;
  const repo = p?.repository?.full_name;
  if (typeof repo !== "string") return undefined;
  const base = repo.toLowerCase();
  if (d.event === "push") return `${base}@push`;
  if (d.event === "check_run") return typeof p?.check_run?.external_id === "string" ? `${base}@run:${p.check_run.external_id}` : undefined;
  const issue = p?.issue?.number ?? p?.pull_request?.number ?? p?.number;
  return typeof issue === "number" ? laneOf(repo, issue) : undefined;
}

/**
 * The id of what a delivery reports when that happens once (a comment created, a review
 * submitted); undefined for events that may legitimately repeat for one id (an edit, a push).
 */
function onceKey(d: Delivery): string | undefined {
  const p = d.payload as { action?: unknown; comment?: { id?: unknown }; review?: { id?: unknown } } | null;
  if (d.event === "issue_comment" && p?.action === "created" && p.comment?.id != null) return `comment:${String(p.comment.id)}`;
  if (d.event === "pull_request_review" && p?.action === "submitted" && p.review?.id != null) return `review:${String(p.review.id)}`;
  return undefined;
}

/**
 * Claims `key` for delivery `d`, atomically: true when `d` holds the claim (it made it now, or
 * on an earlier attempt of its own that failed later), false when another delivery made it.
 * Kept without expiry, like the deliveries themselves: a replay years later is still a replay.
 */
async function claimOnce(deps: GitHubDeps, key: string, d: Delivery): Promise<boolean> {
  try {
    await deps.store.kvSet(COMMANDS_NAMESPACE, key, { delivery: d.id }, { now: deps.runtime.now(), ifVersion: 0 });
    return true;
  } catch (e) {
    if (!(e instanceof ConflictError)) throw e;
    const holder = (await deps.store.kvGet(COMMANDS_NAMESPACE, key, deps.runtime.now()))?.value as { delivery?: unknown } | undefined;
    return holder?.delivery === d.id;
  }
}

export async function handleDelivery(base: GitHubDeps, d: Delivery): Promise<void> {
  // The stages of one delivery share what they read (the live release).
  const deps: GitHubDeps = { ...base, memo: new Map(), delivery: { id: d.id, receivedAt: d.receivedAt } };
  // Most deliveries concern no command, flow or run: they cost no write beyond the inbox's own.
  const stages: Stage[] = [];
  for (const stage of stagesOf(deps, d)) if (await stage.applies()) stages.push(stage);
  if (!stages.length) return;
  const now = () => deps.runtime.now();
  // One process at a time takes a delivery's stages, however long they take.
  const lease = await leaseDelivery(deps.store, d.id, { owner: deps.runtime.workerId, clock: now, logger: deps.logger });
  try {
    const once = onceKey(d);
    if (once !== undefined && !(await claimOnce(deps, once, d))) {
      deps.logger.info("delivery skipped: what it reports was handled under another delivery id", { delivery: d.id, event: d.event, key: once });
      return;
    }
    const doneEntry = d.attempts > 1 ? await deps.store.kvGet(DELIVERIES_NAMESPACE, d.id, now()) : undefined;
    const done = new Set<string>(Array.isArray(doneEntry?.value) ? (doneEntry.value as string[]) : []);
    for (const stage of stages) {
      if (done.has(stage.name)) continue;
      if (lease.lost()) throw new RetryAfterError("STATE_CONFLICT", `delivery ${d.id} was taken over by another process`, 1_000, { delivery: d.id });
      await stage.run();
      done.add(stage.name);
      // Only worth remembering when a later stage may fail and bring the delivery back.
      if (stage !== stages[stages.length - 1]) await deps.store.kvSet(DELIVERIES_NAMESPACE, d.id, [...done], { now: now(), ttlMs: STAGES_TTL_MS });
    }
  } finally {
    lease.end();
  }
}
