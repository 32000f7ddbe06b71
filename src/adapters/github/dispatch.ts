/**
 * One recorded delivery → its handlers. Knows nothing about HTTP (the intake recorded the
 * delivery). A delivery is handled in stages; each finished stage is noted in the store
 * (kv `sluice:deliveries`), so a delivery tried again after a failure does not repeat the
 * stages that already took effect (a command is not run twice).
 *
 * A new comment or a submitted review is handled once by its own id, whatever the delivery id
 * it comes under (SPEC §5): the first delivery to claim the id (kv `sluice:commands`) handles
 * it, and any other delivery of it does nothing. GitHub's signature covers the body, not the
 * `X-GitHub-Delivery` header, so the same signed `/approve` under a fresh delivery id would
 * otherwise count again.
 */
import { ConflictError } from "../../core/errors.js";
import type { Delivery } from "../../ports/run-store.js";
import { handleIssueComment } from "./comment-commands.js";
import type { GitHubDeps } from "./deps.js";
import { handlePullRequest } from "./drafts.js";
import { completeEventWaits, startTriggeredFlows } from "./event-triggers.js";
import { handleCheckRun, handleReview } from "./gate-events.js";
import { handlePush } from "./release-check.js";
import { SCHEDULE_EVENT, handleScheduleTick, type ScheduleTick } from "./scheduler.js";

export const DELIVERIES_NAMESPACE = "sluice:deliveries";
const COMMANDS_NAMESPACE = "sluice:commands";
const STAGES_TTL_MS = 14 * 24 * 3600_000;

type Stage = { name: string; run: () => Promise<unknown> };

function stagesOf(deps: GitHubDeps, d: Delivery): Stage[] {
  const payload = d.payload as any;
  if (d.event === SCHEDULE_EVENT) return [{ name: "schedule", run: () => handleScheduleTick(deps, payload as ScheduleTick) }];
  const repo = payload?.repository?.full_name;
  if (typeof repo !== "string") return [];
  deps.installations.remember(repo, payload?.installation?.id);
  const specific: Stage[] = [];
  switch (d.event) {
    case "push":
      specific.push({ name: "release", run: () => handlePush(deps, payload) });
      break;
    case "pull_request":
      specific.push({ name: "draft", run: () => handlePullRequest(deps, payload) });
      break;
    case "issue_comment":
      specific.push({ name: "command", run: () => handleIssueComment(deps, payload) });
      break;
    case "pull_request_review":
      specific.push({ name: "review", run: () => handleReview(deps, payload) });
      break;
    case "check_run":
      specific.push({ name: "check_run", run: () => handleCheckRun(deps, payload) });
      break;
    default:
      break;
  }
  return [
    ...specific,
    { name: "waits", run: () => completeEventWaits(deps, repo, d.event, payload) },
    { name: "triggers", run: () => startTriggeredFlows(deps, repo, d.event, payload) },
  ];
}

/** The repository a delivery is about: deliveries of one repository are handled in order. */
export function deliveryKey(d: Delivery): string | undefined {
  const p = d.payload as { repository?: { full_name?: unknown }; repo?: unknown } | null;
  const repo = p?.repository?.full_name ?? p?.repo;
  return typeof repo === "string" ? repo.toLowerCase() : undefined;
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

export async function handleDelivery(deps: GitHubDeps, d: Delivery): Promise<void> {
  const once = onceKey(d);
  if (once !== undefined && !(await claimOnce(deps, once, d))) {
    deps.logger.info("delivery skipped: what it reports was handled under another delivery id", { delivery: d.id, event: d.event, key: once });
    return;
  }
  const stages = stagesOf(deps, d);
  const now = () => deps.runtime.now();
  const doneEntry = d.attempts > 1 ? await deps.store.kvGet(DELIVERIES_NAMESPACE, d.id, now()) : undefined;
  const done = new Set<string>(Array.isArray(doneEntry?.value) ? (doneEntry.value as string[]) : []);
  for (const stage of stages) {
    if (done.has(stage.name)) continue;
    await stage.run();
    done.add(stage.name);
    // Only worth remembering when a later stage may fail and bring the delivery back.
    if (stage !== stages[stages.length - 1]) await deps.store.kvSet(DELIVERIES_NAMESPACE, d.id, [...done], { now: now(), ttlMs: STAGES_TTL_MS });
  }
}
