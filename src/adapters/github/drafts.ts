/**
 * Drafts (SPEC §5): a pull request that touches flows gets a `sluice / validate` check run on
 * its head with one annotation per diagnostic, and one sticky comment (found again by a hidden
 * marker) with the flow diff and the risk diff against its base, updated on each push; both are
 * written through the outbox.
 * Flows are checked against the pull request's own config when it changes one and that config
 * is valid (what the merge would release), else against the default branch's.
 */
import type { Config } from "../../core/flow/types.js";
import { CONFIG_PATH } from "../../ports/flow-source.js";
import type { GitHubApi } from "../../ports/step-executor.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import { toAnnotations } from "./annotations.js";
import { laneOf, listAll, splitRepo, type GitHubDeps } from "./deps.js";
import { diffFlows, diffHeadline, renderDiff } from "./flow-diff.js";
import { isFlowPath } from "./release-check.js";
import { allDiagnostics, configAt, snapshotAt } from "./snapshot.js";

export const VALIDATE_CHECK = "sluice / validate";
export const STICKY_MARKER = "<!-- sluice:draft-summary -->";

const DRAFT_ACTIONS = new Set(["opened", "synchronize", "reopened", "ready_for_review"]);

/** Whether a pull request comes from another repository (a fork). */
export function isFork(pr: { head?: { repo?: { full_name?: string } | null }; base?: { repo?: { full_name?: string } } }): boolean {
  const head = pr.head?.repo?.full_name;
  const base = pr.base?.repo?.full_name;
  return !head || !base || head.toLowerCase() !== base.toLowerCase();
}

/** Whether draft runs may start from this pull request (SPEC §3 policy.drafts.forks). */
export function draftsAllowed(pr: Parameters<typeof isFork>[0], config: Config): boolean {
  return !isFork(pr) || config.policy.drafts.forks === "always";
}

/** Whether a pull-request event may change what its flows are (its head moved, or it opened). */
export function isDraftEvent(payload: any): boolean {
  return DRAFT_ACTIONS.has(payload?.action) && !!payload?.pull_request;
}

export async function handlePullRequest(deps: GitHubDeps, payload: any): Promise<void> {
  if (!isDraftEvent(payload)) return;
  const repo = String(payload.repository?.full_name ?? "");
  const pr = payload.pull_request;
  if (!repo || !pr) return;
  const api = await deps.installations.api(repo, payload.installation?.id);
  const files = await listAll<{ filename: string; previous_filename?: string }>(api, "GET /repos/{owner}/{repo}/pulls/{pull_number}/files", {
    ...splitRepo(repo),
    pull_number: pr.number,
  });
  if (!files.some((f) => isFlowPath(f.filename) || (f.previous_filename !== undefined && isFlowPath(f.previous_filename)))) return;
  await validateDraft(deps, api, repo, pr);
}

export async function validateDraft(deps: GitHubDeps, api: GitHubApi, repo: string, pr: any): Promise<void> {
  const source = new GitHubFlowSource(repo, api);
  const headSha = String(pr.head.sha);
  const baseSha = String(pr.base.sha);
  const named = pr.base?.repo?.default_branch;
  const defaultBranch = typeof named === "string" && named ? named : await source.defaultBranch();
  const liveConfig = await configAt(source, await source.resolve(defaultBranch));
  const headConfig = await configAt(source, headSha);
  const configChanged = headConfig.configText !== liveConfig.configText;
  // The config the merge would release, when it is valid; else the default branch's.
  const checkConfig = configChanged && headConfig.configValid ? headConfig : liveConfig;
  const head = await snapshotAt(source, headSha, checkConfig);
  const base = await snapshotAt(source, baseSha).catch(() => undefined);
  const diff = diffFlows(base, head);
  const diagnostics = [
    ...(configChanged ? headConfig.configDiagnostics.map((d) => ({ ...d, file: d.file ?? CONFIG_PATH })) : []),
    ...allDiagnostics({ ...head, configDiagnostics: [] }),
  ];
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const fork = isFork(pr);
  const notes: string[] = [];
  if (configChanged) {
    notes.push(
      headConfig.configValid
        ? `This pull request changes \`${CONFIG_PATH}\`: flows were checked against it. Draft runs still use the default branch's config until it is merged.`
        : `This pull request's \`${CONFIG_PATH}\` is invalid: flows were checked against the default branch's config.`,
    );
  }
  if (fork && liveConfig.config.policy.drafts.forks === "never") notes.push("This pull request comes from a fork: draft runs from forks are never started (`policy.drafts.forks: never`).");
  else notes.push(`Run a draft of a flow at this head with a comment: \`/run <flow> [name=value …]\`.`);
  const headline = `${diffHeadline(diff)}; ${errors ? `${errors} error(s)` : "valid"}`;
  const body = [`**Flows at \`${headSha.slice(0, 7)}\`** against \`${String(pr.base.ref)}\`: ${headline}`, "", renderDiff(diff), "", ...notes.map((n) => `> ${n}`)].join("\n");
  // The check run and the sticky comment go through the outbox, in this order, after any earlier
  // push's: the pull request's lane keeps them in order, whatever process sends them.
  const lane = laneOf(repo, Number(pr.number));
  await deps.outbox.enqueue(
    {
      kind: "check_run",
      repo,
      check: {
        name: VALIDATE_CHECK,
        headSha,
        conclusion: errors ? "failure" : "success",
        title: errors ? `${errors} error(s) in flows` : `Flows are valid: ${diffHeadline(diff)}`,
        summary: body,
        annotations: toAnnotations(diagnostics, CONFIG_PATH),
      },
    },
    { priority: "gate", lane },
  );
  const diagnosticsList = diagnostics
    .filter((d) => d.severity === "error")
    .slice(0, 20)
    .map((d) => `- \`${d.file}:${d.line}\` ${d.code}: ${d.message}`);
  const comment = [
    STICKY_MARKER,
    `### Sluice: flow changes in this pull request`,
    "",
    body,
    ...(diagnosticsList.length ? ["", "**Errors**", "", ...diagnosticsList, ...(errors > 20 ? [`- … and ${errors - 20} more in the \`${VALIDATE_CHECK}\` check`] : [])] : []),
  ].join("\n");
  await deps.outbox.enqueue({ kind: "sticky", repo, issue: Number(pr.number), body: comment, marker: STICKY_MARKER }, { priority: "reply", lane });
}
