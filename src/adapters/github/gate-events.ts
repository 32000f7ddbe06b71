/**
 * Approvals from pull-request reviews (`approved` approves, `changes_requested` rejects, on the
 * pull request a gate names or the run was started from, and only at the head the gate binds:
 * the review's place is its pull request and `commit_id`) and from the check run's buttons
 * (`check_run.requested_action`: Approve, Reject, Cancel; the run id is the check run's
 * `external_id`); `check_run.rerequested` retries the run. Refusals are answered where the
 * person can read them: on the pull request, or on the run's issue.
 */
import { cancelRun, retryRun } from "../../app/signals.js";
import { SluiceError } from "../../core/errors.js";
import type { GitHubApi } from "../../ports/step-executor.js";
import { parseActionIdentifier } from "./check-run-summary.js";
import { ACTIVE, concerns, decideFromGitHub, hasGate, loadRuns, namedRun, type Outcome } from "./approvals.js";
import { digestInText } from "./commands.js";
import { errorText, isTransient, reply, runUrl, type GitHubDeps } from "./deps.js";
import { atLeast, isBot, permissionOf, senderOf } from "./people.js";

export async function handleReview(deps: GitHubDeps, payload: any): Promise<void> {
  if (payload.action !== "submitted") return;
  const state = String(payload.review?.state ?? "").toLowerCase();
  const decision = state === "approved" ? "approve" : state === "changes_requested" ? "reject" : undefined;
  if (!decision) return;
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
  const text = outcomes.map((o) => `${o.ok ? "✅" : "❌"} ${o.message}`).join("\n");
  await reply(api, repo, number, `@${sender.login} your review (${state.replace("_", " ")}):\n\n${text}`).catch((e) =>
    deps.logger.warn("reply to a review failed", { repo, pull: number, error: errorText(e) }),
  );
}

async function answer(deps: GitHubDeps, api: GitHubApi, repo: string, issue: number | undefined, text: string): Promise<void> {
  if (issue === undefined) {
    deps.logger.info("check run action answered", { repo, text });
    return;
  }
  await reply(api, repo, issue, text).catch((e) => deps.logger.warn("reply to a check run action failed", { repo, issue, error: errorText(e) }));
}

export async function handleCheckRun(deps: GitHubDeps, payload: any): Promise<void> {
  const action = payload.action;
  if (action !== "requested_action" && action !== "rerequested") return;
  const runId = payload.check_run?.external_id;
  if (typeof runId !== "string" || runId === "") return;
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
      await answer(deps, api, repo, issue, `@${sender.login} (check run button) ${outcome.ok ? "✅" : "❌"} ${outcome.message}`);
      return;
    }
  }
  // Cancel and re-run are commands: humans with write access only.
  const verb = action === "rerequested" ? "retry" : "cancel";
  const permission = isBot(sender) ? "none" : await permissionOf(api, repo, sender.login);
  if (!atLeast(permission, "write")) {
    await answer(deps, api, repo, issue, `@${sender.login} ❌ cannot ${verb} run ${link}: that needs write access to ${repo} (you have ${permission})`);
    return;
  }
  try {
    if (verb === "cancel") {
      if (!ACTIVE.includes(run.record.status)) throw new SluiceError("NOT_WAITING", `run ${runId} has already ended (${run.record.status})`);
      await cancelRun(deps.runtime, runId, sender.login, `cancelled from the check run by ${sender.login}`);
    } else {
      await retryRun(deps.runtime, runId, sender.login);
    }
    await answer(deps, api, repo, issue, `@${sender.login} ✅ ${verb === "cancel" ? "cancelled" : "retrying"} run ${link} (${run.state.flow.name})`);
  } catch (e) {
    if (!(e instanceof SluiceError) || isTransient(e)) throw e;
    await answer(deps, api, repo, issue, `@${sender.login} ❌ cannot ${verb} run ${link}: ${e.message}`);
  }
}
