/**
 * Releases (SPEC §5): a push to the default branch that touches `.github/flows/` or
 * `.github/sluice.yml` is validated, summarised in a `sluice / release` check run on its commit
 * (flows added, changed, removed; triggers; risk changes; one annotation per diagnostic), and
 * recorded as the repository's live release, which schedules and event triggers follow.
 * find (read the commit and the release before it) → build (pure) → write (the check run
 * through the outbox, the release in the store).
 */
import { CONFIG_PATH, FLOWS_DIR } from "../../ports/flow-source.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import { toAnnotations } from "./annotations.js";
import { splitRepo, type GitHubDeps } from "./deps.js";
import { diffFlows, diffHeadline, renderDiff } from "./flow-diff.js";
import { allDiagnostics, getLiveRelease, setLiveRelease, snapshotAt, type Snapshot } from "./snapshot.js";

export const RELEASE_CHECK = "sluice / release";
const ZERO = "0".repeat(40);

/** A path that changes what a release holds. */
export function isFlowPath(path: string): boolean {
  return path === CONFIG_PATH || (path.startsWith(`${FLOWS_DIR}/`) && /\.ya?ml$/i.test(path) && !path.slice(FLOWS_DIR.length + 1).includes("/"));
}

interface PushCommit {
  added?: string[];
  removed?: string[];
  modified?: string[];
}

/** Whether a push touched flows or config. A push of 20+ commits lists only some of them: assume it did. */
export function pushTouchesFlows(payload: { commits?: PushCommit[]; created?: boolean }): boolean {
  const commits = payload.commits ?? [];
  if (commits.length >= 20) return true;
  return commits.some((c) => [...(c.added ?? []), ...(c.removed ?? []), ...(c.modified ?? [])].some(isFlowPath));
}

function buildSummary(snapshot: Snapshot, previous: { sha: string } | undefined, diffMd: string, released: boolean, branch: string): string {
  const diags = allDiagnostics(snapshot);
  const errors = diags.filter((d) => d.severity === "error").length;
  const warnings = diags.length - errors;
  const lines = [
    released
      ? `**\`${snapshot.sha.slice(0, 7)}\` is the live release on \`${branch}\`**${previous ? ` (it replaces \`${previous.sha.slice(0, 7)}\`)` : ""}: schedules and event triggers follow it.`
      : `**Not released**: \`${CONFIG_PATH}\` is invalid, so the release before it stays live.`,
    "",
    diffMd,
    "",
  ];
  if (diags.length) {
    lines.push(`**Diagnostics**: ${errors} error(s), ${warnings} warning(s), annotated on their lines.${errors ? " Invalid flows do not run until they are fixed." : ""}`);
  }
  return lines.join("\n");
}

/** Whether a push may release flows: to the default branch, touching flows or config. */
export function isReleasePush(payload: any): boolean {
  const repo = String(payload?.repository?.full_name ?? "");
  const branch = String(payload?.repository?.default_branch ?? payload?.repository?.master_branch ?? "");
  if (!repo || payload.ref !== `refs/heads/${branch}` || payload.deleted || payload.after === ZERO) return false;
  return pushTouchesFlows(payload);
}

export async function handlePush(deps: GitHubDeps, payload: any): Promise<void> {
  if (!isReleasePush(payload)) return;
  const repo = String(payload.repository.full_name);
  const branch = String(payload.repository.default_branch ?? payload.repository.master_branch);
  const after = String(payload.after);
  const now = deps.runtime.now();
  const api = await deps.installations.api(repo, payload.installation?.id);
  const recorded = await getLiveRelease(deps.store, repo, now);
  if (recorded?.sha === after) return; // already released (a retry of this delivery)
  if (recorded) {
    // Deliveries may arrive out of order: never go back to a commit older than the live release.
    const cmp = await api.request("GET /repos/{owner}/{repo}/compare/{basehead}", { ...splitRepo(repo), basehead: `${recorded.sha}...${after}`, per_page: 1 }).catch(() => undefined);
    if (cmp && (cmp.data.status === "behind" || cmp.data.status === "identical")) {
      deps.logger.info("push is older than the live release; not released", { repo, sha: after, live: recorded.sha });
      return;
    }
  }
  const source = new GitHubFlowSource(repo, api);
  const snapshot = await snapshotAt(source, after);
  const baseSha = recorded?.sha ?? (payload.before && payload.before !== ZERO ? String(payload.before) : undefined);
  const previous = baseSha ? await snapshotAt(source, baseSha).catch(() => undefined) : undefined;
  const diff = diffFlows(previous, snapshot);
  const released = snapshot.configValid;
  const diags = allDiagnostics(snapshot);
  const invalid = snapshot.flows.filter((f) => !f.flow).length;
  await deps.outbox.enqueue(
    {
      kind: "check_run",
      repo,
      check: {
        name: RELEASE_CHECK,
        headSha: after,
        conclusion: released && invalid === 0 ? "success" : "failure",
        title: released ? `Released: ${diffHeadline(diff)}${invalid ? `; ${invalid} invalid` : ""}` : `Not released: ${CONFIG_PATH} is invalid`,
        summary: buildSummary(snapshot, recorded, renderDiff(diff, { showUnchanged: true }), released, branch),
        annotations: toAnnotations(diags, CONFIG_PATH),
      },
    },
    { priority: "gate", lane: `${repo.toLowerCase()}@release` },
  );
  if (released) {
    await setLiveRelease(deps.store, repo, { sha: after, ref: branch, at: now, ...(recorded ? { previous: recorded.sha } : {}) }, now);
    deps.logger.info("release recorded", { repo, sha: after, flows: snapshot.flows.length });
  }
}
