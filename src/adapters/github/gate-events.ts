/**
 * Approvals from pull-request reviews (`approved` approves, `changes_requested` rejects, on the
 * pull request a gate names or the run was started from, and only at the head the gate binds:
 * the review's place is its pull request and `commit_id`) and from the check run's buttons
 * (`check_run.requested_action`: Approve, Reject, Cancel; the run id is the check run's
 * `external_id`); `check_run.rerequested` retries the run. A decision that counted is shown by
 * the run's check run; a refusal is answered where the person can read it (on the pull request,
 * or on the run's issue), through the outbox, and journaled when it is a decision.
 */
import { cancelRun, retryRun } from "../../app/signals.js";
import { SluiceError } from "../../core/errors.js";
import { parseActionIdentifier } from "./check-run-summary.js";
import { ACTIVE, concerns, decideFromGitHub, hasGate, loadRuns, namedRun, type Outcome } from "./approvals.js";
import { digestInText } from "./commands.js";
import { errorText, isTransient, replyLater, runUrl, type GitHubDeps } from "./deps.js";
import { atLeast, isBot, permissionOf, senderOf } from "./people.js";

function decisionOf(payload: any): "approve" | "reject" | undefined {
  if (payload?.action !== "submitted") return undefined;
  const state = String(payload.review?.state ?? "").toLowerCase();
  return state === "approved" ? "approve" : state === "changes_requested" ? "reject" : undefined;
}

/** Whether a review decides something: submitted, approving or requesting changes. */
export function isDecisionReview(payload: any): boolean {
  return decisionOf(payload) !== undefined;
}

/** Whether a check-run event is a button or a re-run of a check run that may be one of ours. */
export function isRunAction(payload: any): boolean {
  const action = payload?.action;
  const runId = payload?.check_run?.external_id;
  return (action === "requested_action" || action === "rerequested") && typeof runId === "string" && runId !== "";
}

export async function handleReview(deps: GitHubDeps, payload: any): Promise<void> {
  const decision = decisionOf(payload);
  if (!decision) return;
  const state = String(payload.review.state).toLowerCase();
  const repo = String(payload.repository.full_name);
  const number = Number(payload.pull_request.number);
  const runs = (await loadRuns(deps, repo, ["waiting"])).filter((r) => hasGate(r) && concerns(r.state, number));
  if (!runs.length) return;
  const sender = senderOf(payload.sender, payload.review?.user);
  if (!sender) return;
  const api = await deps.installations.api(repo, payload.installation?.id);
  const body = typeof payload.review?.body === "string" ? payload.review.body : "";
  const digest = digestInText(body);
  const commit = typeof payload.review?.commit_id === "string" ? payload.review.commit_id : undefined;
  const outcomes: Outcome[] = [];
  for (const r of runs) {
    outcomes.push(
      await decideFromGitHub(deps, api, repo, {
        runId: r.record.id,
        decision,
        via: "review",
        sender,
        place: { issue: number, ...(commit ? { commit } : {}) },
        ...(digest ? { digest } : {}),
        ...(body.trim() ? { comment: body.trim() } : {}),
      }),
    );
  }
  // What counted, the check run shows; what did not is explained here.
  const refused = outcomes.filter((o) => !o.ok);
  if (!refused.length) return;
  await refuse(deps, repo, number, `@${sender.login} your review (${state.replace("_", " ")}):\n\n${refused.map((o) => `❌ ${o.message}`).join("\n")}`);
}

/** Explains a refusal on the run's issue or pull request (a run without one: in the log only). */
async function refuse(deps: GitHubDeps, repo: string, issue: number | undefined, text: string): Promise<void> {
  if (issue === undefined) {
    deps.logger.info("check run action refused", { repo, text });
    return;
  }
  // The decision is recorded: failing to record the answer is never a reason to decide again.
  await replyLater(deps, repo, issue, text).catch((e: unknown) => deps.logger.error("the answer to a refused decision could not be recorded", { repo, issue, text, error: errorText(e) }));
}

export async function handleCheckRun(deps: GitHubDeps, payload: any): Promise<void> {
  if (!isRunAction(payload)) return;
  const action = payload.action;
  const runId = String(payload.check_run.external_id);
  const me = await deps.installations.bot();
  if (Number(payload.check_run?.app?.id) !== me.id) return; // not our check run: its external_id is not our run id
  const repo = String(payload.repository.full_name);
  const run = await namedRun(deps, repo, runId);
  if (!run) return;
  const api = await deps.installations.api(repo, payload.installation?.id);
  const sender = senderOf(payload.sender);
  if (!sender) return;
  const issue = run.state.trigger.issue;
  const link = `[\`${runId}\`](${runUrl(deps, runId)})`;

  if (action === "requested_action") {
    const parsed = parseActionIdentifier(String(payload.requested_action?.identifier ?? ""));
    if (!parsed) return;
    if (parsed.action === "approve" || parsed.action === "reject") {
      const outcome = await decideFromGitHub(deps, api, repo, {
        runId,
        decision: parsed.action,
        via: "check_run",
        sender,
        ...(parsed.digest ? { digest: parsed.digest } : {}),
      });
      if (!outcome.ok) await refuse(deps, repo, issue, `@${sender.login} (check run button) ❌ ${outcome.message}`);
      return;
    }
  }
  // Cancel and re-run are commands: humans with write access only.
  const verb = action === "rerequested" ? "retry" : "cancel";
  const permission = isBot(sender) ? "none" : await permissionOf(api, repo, sender.login);
  if (!atLeast(permission, "write")) {
    await refuse(deps, repo, issue, `@${sender.login} ❌ cannot ${verb} run ${link}: that needs write access to ${repo} (you have ${permission})`);
    return;
  }
  try {
    if (verb === "cancel") {
      if (!ACTIVE.includes(run.record.status)) throw new SluiceError("NOT_WAITING", `run ${runId} has already ended (${run.record.status})`);
      await cancelRun(deps.runtime, runId, sender.login, `cancelled from the check run by ${sender.login}`);
    } else {
      await retryRun(deps.runtime, runId, sender.login);
    }
    deps.logger.info(verb === "cancel" ? "run cancelled from its check run" : "run retried from its check run", { run: runId, by: sender.login });
  } catch (e) {
    if (!(e instanceof SluiceError) || isTransient(e)) throw e;
    await refuse(deps, repo, issue, `@${sender.login} ❌ cannot ${verb} run ${link}: ${e.message}`);
  }
}
