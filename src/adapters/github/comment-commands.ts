/**
 * Commands in issue and pull-request comments (SPEC §5), honoured only from humans with write
 * access. A command acts only on the runs of the issue or pull request it is posted in: a bare
 * one finds them there, and one that names a run of elsewhere is refused (decisions by
 * `decideGate`, which journals the refusal).
 *
 * Each command is acknowledged once, through the outbox (it never waits for GitHub): a reply
 * where there is something to say that no check run carries (why a command was refused or a
 * run could not start, the answer to `/status`, the link to a run started from an issue, which
 * has no commit to show its check run), else a 👍 reaction, the check run saying the rest.
 * Acknowledgements (reactions, the link of a started run, the answer to someone without write
 * access) are skipped when GitHub's write budget is under pressure; explanations never are.
 */
import { pickFlow } from "../../app/releases.js";
import { cancelRun, retryRun } from "../../app/signals.js";
import { SluiceError } from "../../core/errors.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import { RUN_STATUSES, type RunStatus } from "../../ports/run-store.js";
import type { GitHubApi } from "../../ports/step-executor.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import { ACTIVE, belongsTo, decideFromGitHub, gateTarget, loadRuns, namedRun, statusLine, type LoadedRun, type Outcome } from "./approvals.js";
import type { WritePriority } from "./budget.js";
import { looksLikeDigest, looksLikeRunId, parseCommand, parseRunArgs, type ParsedCommand } from "./commands.js";
import { errorText, isTransient, liveOptions, reactLater, replyLater, runUrl, splitRepo, startRun, type GitHubDeps } from "./deps.js";
import { draftsAllowed } from "./drafts.js";
import { atLeast, isBot, permissionOf, senderOf, type Sender } from "./people.js";
import { asLoaded, liveSnapshot, snapshotAt } from "./snapshot.js";

interface CommentContext {
  deps: GitHubDeps;
  api: GitHubApi;
  repo: string;
  issue: number;
  isPullRequest: boolean;
  sender: Sender;
  payload: any;
}

/** Whether a comment is a command for the app: a new comment whose first line is a command, by a human. */
export function isCommandComment(payload: any): boolean {
  if (payload?.action !== "created" || !parseCommand(String(payload.comment?.body ?? ""))) return false;
  const sender = senderOf(payload.sender, payload.comment?.user);
  return !!sender && !isBot(sender); // bots' comments are never commands (and never loop with our replies)
}

export async function handleIssueComment(deps: GitHubDeps, payload: any): Promise<void> {
  if (!isCommandComment(payload)) return;
  const command = parseCommand(String(payload.comment.body)) as ParsedCommand;
  const sender = senderOf(payload.sender, payload.comment?.user) as Sender;
  const repo = String(payload.repository.full_name);
  const api = await deps.installations.api(repo, payload.installation?.id);
  const ctx: CommentContext = { deps, api, repo, issue: Number(payload.issue.number), isPullRequest: payload.issue.pull_request !== undefined && payload.issue.pull_request !== null, sender, payload };
  let outcome: Outcome;
  let outsider = false;
  try {
    const permission = await permissionOf(api, repo, sender.login);
    outsider = !atLeast(permission, "write");
    outcome = outsider
      ? { ok: false, code: "APPROVAL_NOT_ELIGIBLE", message: `commands are honoured only from people with write access to ${repo}; @${sender.login} has ${permission}` }
      : await execute(ctx, command);
  } catch (e) {
    if (isTransient(e)) throw e; // nothing was done yet: the delivery is tried again
    outcome = { ok: false, code: e instanceof SluiceError ? e.code : "INTERNAL", message: errorText(e) };
    if (!(e instanceof SluiceError)) deps.logger.error("command failed", { repo, issue: ctx.issue, command: command.name, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  }
  // The command is done: failing to record its acknowledgement is never a reason to do it again.
  const reply = replyOf(ctx, command, outcome, outsider);
  try {
    if (reply) {
      await replyLater(deps, repo, ctx.issue, `> /${command.name}${command.args.length ? ` ${command.args.join(" ")}` : ""}\n\n@${sender.login} ${outcome.ok ? "✅" : "❌"} ${outcome.message}`, reply);
    } else {
      await reactLater(deps, repo, ctx.issue, Number(payload.comment.id), "+1");
    }
  } catch (e) {
    deps.logger.error("the answer to a command could not be recorded", { repo, issue: ctx.issue, command: command.name, outcome: outcome.message, error: errorText(e) });
  }
}

/**
 * How a command's outcome is told, when a reply is needed (the priority of the reply), else
 * undefined: a reaction acknowledges it and the check run carries the result. Someone without
 * write access is answered only when the budget has room: strangers cannot spend it.
 */
function replyOf(ctx: CommentContext, command: ParsedCommand, outcome: Outcome, outsider: boolean): WritePriority | undefined {
  if (!outcome.ok) return outsider ? "ack" : "reply";
  if (command.name === "status") return "reply";
  if (command.name === "run" && !ctx.isPullRequest) return "ack";
  return undefined;
}

async function execute(ctx: CommentContext, command: ParsedCommand): Promise<Outcome> {
  switch (command.name) {
    case "run":
      return runCommand(ctx, command);
    case "approve":
    case "reject":
      return decideCommand(ctx, command);
    case "cancel":
      return cancelCommand(ctx, command);
    case "retry":
      return retryCommand(ctx, command);
    case "status":
      return statusCommand(ctx, command);
  }
}

async function runCommand(ctx: CommentContext, command: ParsedCommand): Promise<Outcome> {
  const parsed = parseRunArgs(command.args);
  if (!parsed.ok) return { ok: false, code: "USAGE", message: parsed.error };
  const { deps, api, repo } = ctx;
  const source = new GitHubFlowSource(repo, api);
  const live = await liveSnapshot(deps.store, source, deps.runtime.now(), liveOptions(deps, ctx.payload));
  let loaded = asLoaded(live.snapshot, live.release);
  if (ctx.isPullRequest) {
    const pr = (await api.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", { ...splitRepo(repo), pull_number: ctx.issue })).data;
    if (!draftsAllowed(pr, live.snapshot.config)) {
      return { ok: false, code: "USAGE", message: "this pull request comes from a fork, and draft runs from forks are never started (`policy.drafts.forks: never` in .github/sluice.yml)" };
    }
    // A draft: the flows at the pull request's head, with the default branch's config.
    const head = await snapshotAt(source, String(pr.head.sha), live.snapshot);
    loaded = asLoaded(head, { sha: String(pr.head.sha), ref: String(pr.head.ref), kind: "draft" });
  }
  const flow = pickFlow(loaded, parsed.flow);
  const inputs = resolveInputs(flow, parsed.inputs);
  const id = await startRun(deps, {
    flow,
    config: loaded.config,
    release: loaded.release,
    repo,
    inputs,
    trigger: { type: "command", actor: ctx.sender.login, event: ctx.payload, issue: ctx.issue },
  });
  return {
    ok: true,
    message: `started run [\`${id}\`](${runUrl(deps, id)}) of \`${flow.name}\` at \`${loaded.release.sha.slice(0, 7)}\` (${loaded.release.kind}${loaded.release.kind === "draft" ? `, ${loaded.release.ref}` : ""})`,
  };
}

/** `/approve [run] [digest]` and `/reject [run] [reason]`: the first word is a run id when such a run exists. */
async function decideCommand(ctx: CommentContext, command: ParsedCommand): Promise<Outcome> {
  const { deps, api, repo } = ctx;
  const [first, second] = command.args;
  let runId: string | undefined;
  let rest = command.text;
  if (first && looksLikeRunId(first) && (await namedRun(deps, repo, first))) {
    runId = first;
    rest = command.text.slice(command.text.indexOf(first) + first.length).trim();
  }
  let digest: string | undefined;
  let comment: string | undefined;
  if (command.name === "approve") {
    const d = runId ? second : first;
    if (d !== undefined) {
      if (!looksLikeDigest(d)) return { ok: false, code: "USAGE", message: `\`${d}\` is neither a run of ${repo} nor a gate digest: \`/approve [run] [digest]\`` };
      digest = d;
    }
  } else if (rest) comment = rest;
  const target = await gateTarget(deps, repo, ctx.issue, runId);
  if (!target.ok) return { ok: false, code: "NOT_WAITING", message: target.message };
  const run = target.runs[0] as LoadedRun;
  return decideFromGitHub(deps, api, repo, {
    runId: run.record.id,
    decision: command.name === "approve" ? "approve" : "reject",
    via: "comment",
    sender: ctx.sender,
    place: { issue: ctx.issue },
    ...(digest ? { digest } : {}),
    ...(comment ? { comment } : {}),
  });
}

/**
 * The runs `/cancel [run]` and `/retry [run]` act on: the one named, if it belongs to this issue
 * or pull request, else those of here with these statuses. Never a run of elsewhere.
 */
async function runsOfHere(ctx: CommentContext, command: ParsedCommand, status: RunStatus[], verb: string): Promise<LoadedRun[] | Outcome> {
  const id = command.args[0];
  const here = `this ${ctx.isPullRequest ? "pull request" : "issue"}`;
  if (id) {
    const run = await namedRun(ctx.deps, ctx.repo, id);
    if (!run) return { ok: false, code: "RUN_NOT_FOUND", message: `there is no run \`${id}\` in ${ctx.repo}` };
    if (!belongsTo(run.state, ctx.issue)) {
      const where = run.state.trigger.issue !== undefined ? `#${run.state.trigger.issue}` : "no issue or pull request";
      return { ok: false, code: "APPROVAL_WRONG_PLACE", message: `run \`${id}\` does not belong to ${here} (it was started from ${where}): ${verb} it where it belongs, or from its check run` };
    }
    return [run];
  }
  const runs = (await loadRuns(ctx.deps, ctx.repo, status)).filter((r) => belongsTo(r.state, ctx.issue));
  return runs.length ? runs : { ok: false, code: "NOT_FOUND", message: `no run of ${here} to ${verb}; a command acts only on the runs of the issue or pull request it is posted in` };
}

async function cancelCommand(ctx: CommentContext, command: ParsedCommand): Promise<Outcome> {
  const runs = await runsOfHere(ctx, command, ACTIVE, "cancel");
  if (!Array.isArray(runs)) return runs;
  const done: string[] = [];
  const refused: string[] = [];
  for (const r of runs) {
    try {
      await cancelRun(ctx.deps.runtime, r.record.id, ctx.sender.login, `/cancel by ${ctx.sender.login}`);
      done.push(`[\`${r.record.id}\`](${runUrl(ctx.deps, r.record.id)}) (${r.state.flow.name})`);
    } catch (e) {
      if (!(e instanceof SluiceError) || isTransient(e)) throw e;
      refused.push(`\`${r.record.id}\`: ${e.message}`);
    }
  }
  if (!done.length) return { ok: false, code: "NOT_WAITING", message: refused.join("; ") };
  return { ok: true, message: `cancelled ${done.join(", ")}${refused.length ? `; not cancelled: ${refused.join("; ")}` : ""}` };
}

async function retryCommand(ctx: CommentContext, command: ParsedCommand): Promise<Outcome> {
  const runs = await runsOfHere(ctx, command, ["failed", "cancelled", "timed_out"], "retry");
  if (!Array.isArray(runs)) return runs;
  const run = runs[0] as LoadedRun; // the most recent one
  await retryRun(ctx.deps.runtime, run.record.id, ctx.sender.login);
  return { ok: true, message: `retrying run [\`${run.record.id}\`](${runUrl(ctx.deps, run.record.id)}) (${run.state.flow.name}) from its first unfinished step` };
}

async function statusCommand(ctx: CommentContext, command: ParsedCommand): Promise<Outcome> {
  const { deps, repo } = ctx;
  let runs: LoadedRun[];
  if (command.args[0]) {
    const run = await namedRun(deps, repo, command.args[0]);
    if (!run) return { ok: false, code: "RUN_NOT_FOUND", message: `there is no run \`${command.args[0]}\` in ${repo}` };
    runs = [run];
  } else {
    const all = await loadRuns(deps, repo, RUN_STATUSES, 100);
    runs = all.filter((r) => r.state.trigger.issue === ctx.issue || r.record.status === "waiting").slice(0, 10);
  }
  if (!runs.length) return { ok: true, message: "no runs started from here, and none waiting in this repository" };
  const table = ["| run | flow | status | at | release | by |", "|---|---|---|---|---|---|", ...runs.map((r) => statusLine(deps, r))].join("\n");
  return { ok: true, message: `runs of this ${ctx.isPullRequest ? "pull request" : "issue"} and runs waiting in ${repo}:\n\n${table}` };
}
