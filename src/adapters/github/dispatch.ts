/**
 * One recorded delivery → its handlers. Knows nothing about HTTP (the intake recorded the
 * delivery). A delivery is handled in stages; each finished stage is noted in the store
 * (kv `sluice:deliveries`), so a delivery tried again after a failure does not repeat the
 * stages that already took effect (a command is not run twice).
 */
import type { Delivery } from "../../ports/run-store.js";
import { handleIssueComment } from "./comment-commands.js";
import type { GitHubDeps } from "./deps.js";
import { handlePullRequest } from "./drafts.js";
import { completeEventWaits, startTriggeredFlows } from "./event-triggers.js";
import { handleCheckRun, handleReview } from "./gate-events.js";
import { handlePush } from "./release-check.js";
import { SCHEDULE_EVENT, handleScheduleTick, type ScheduleTick } from "./scheduler.js";

export const DELIVERIES_NAMESPACE = "sluice:deliveries";
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

export async function handleDelivery(deps: GitHubDeps, d: Delivery): Promise<void> {
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
