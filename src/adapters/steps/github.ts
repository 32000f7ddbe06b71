/**
 * The `github` step: one of `create_pull_request`, `merge_pull_request`, `comment`,
 * `create_issue`, `add_labels`, `dispatch_workflow`, through `ctx.github.request` (the app's
 * installation token on the server, a `github` connection locally). Outputs are the API
 * result's essentials (`number`, `url`, `sha`, `merged`, `id`...).
 *
 * `create_pull_request` writes through the git data API (blobs → tree → commit → ref) and is
 * idempotent: a retry finds the branch already holding the files (no new commit) and the pull
 * request already open (returned as is). `merge_pull_request` of a pull request that is already
 * merged answers with its merge commit; with `sha` (the engine passes the head an approval
 * covered) GitHub merges that head only.
 *
 * On the server `ctx.github` spends the installation's write budget, shared by every process
 * (src/adapters/github/budget.ts): a request waits (as long as the step may run) for a token
 * and for any hold GitHub asked for, and one refused by a rate limit is sent again once the
 * hold has passed. Errors that still come through: a 4xx is non-retriable with GitHub's
 * message, a rate limit (429, or 403 with a rate-limit answer) waits and retries, a 5xx retries.
 */
import { assertNever, NonRetriableError, type SluiceError } from "../../core/errors.js";
import type { GitHubApi, StepContext, StepExecutor, StepResult } from "../../ports/step-executor.js";
import { withDeadline, type Deadline } from "./deadline.js";
import { githubError, requireGitHub } from "./github-errors.js";
import {
  isRecord,
  optBoolean,
  optNumber,
  optString,
  optStringMap,
  paramError,
  reqString,
  typeName,
  type Params,
} from "./params.js";

const KIND = "github";

export const GITHUB_OPERATIONS = [
  "create_pull_request",
  "merge_pull_request",
  "comment",
  "create_issue",
  "add_labels",
  "dispatch_workflow",
] as const;
export type GitHubOperation = (typeof GITHUB_OPERATIONS)[number];


type Plan =
  | {
      op: "create_pull_request";
      branch: string;
      base?: string;
      title: string;
      body?: string;
      draft?: boolean;
      files?: Record<string, string | null>;
      message?: string;
    }
  | {
      op: "merge_pull_request";
      number: number;
      method: "merge" | "squash" | "rebase";
      sha?: string;
      commitTitle?: string;
      commitMessage?: string;
    }
  | { op: "comment"; issue: number; body: string }
  | { op: "create_issue"; title: string; body?: string; labels: string[]; assignees: string[] }
  | { op: "add_labels"; issue: number; labels: string[] }
  | { op: "dispatch_workflow"; workflow: string; ref?: string; inputs: Record<string, string> };

export const githubExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const plan = readPlan(params, ctx);
    const [owner, repo] = ctx.repo.split("/");
    if (!owner || !repo) throw new NonRetriableError("INTERNAL", `the run's repository '${ctx.repo}' is not owner/name`);
    const github = requireGitHub(ctx, `github ${plan.op}`);
    return withDeadline(ctx, async (deadline) => {
      const api = new Api(github, owner, repo, plan.op, deadline, ctx);
      switch (plan.op) {
        case "create_pull_request":
          return createPullRequest(api, plan);
        case "merge_pull_request":
          return mergePullRequest(api, plan);
        case "comment":
          return comment(api, plan);
        case "create_issue":
          return createIssue(api, plan);
        case "add_labels":
          return addLabels(api, plan);
        case "dispatch_workflow":
          return dispatchWorkflow(api, plan);
        default:
          return assertNever(plan, "github operation");
      }
    });
  },
};

// ---------------------------------------------------------------- parameters

function readPlan(params: Params, ctx: StepContext): Plan {
  const ops = GITHUB_OPERATIONS.filter((k) => params[k] !== undefined && params[k] !== null);
  if (ops.length !== 1) {
    throw new NonRetriableError(
      "PARAM_INVALID",
      `github: give exactly one of ${GITHUB_OPERATIONS.join(", ")} (got ${ops.length === 0 ? "none" : ops.join(", ")})`,
      { parameter: "github" },
    );
  }
  const op = ops[0] as GitHubOperation;
  const spec = params[op];
  if (!isRecord(spec)) throw paramError(KIND, op, `must be a map, not ${typeName(spec)}`);
  // The helpers of params.ts name the parameter they read: key the spec by its full path.
  const sp = prefixed(spec, op);
  const at = (name: string): string => `${op}.${name}`;
  const str = (name: string): string | undefined => optString(KIND, sp, at(name));
  const req = (name: string): string => reqString(KIND, sp, at(name));
  const issueNumber = (name: string, runIssue: "default to the run's" | "required"): number => {
    const n = optNumber(KIND, sp, at(name), { min: 1, integer: true }) ?? (runIssue === "required" ? undefined : ctx.issue);
    if (n === undefined) {
      throw paramError(KIND, at(name), runIssue === "required" ? "is required" : "is required: the run did not come from a pull request or an issue");
    }
    return n;
  };
  switch (op) {
    case "create_pull_request": {
      const branch = req("branch").replace(/^refs\/heads\//, "");
      if (!validBranch(branch)) throw paramError(KIND, at("branch"), `is not a valid branch name: '${branch}'`);
      const base = str("base")?.replace(/^refs\/heads\//, "");
      if (base !== undefined && base === branch) throw paramError(KIND, at("base"), "must differ from the branch");
      const files = readFiles(spec.files, at("files"));
      const body = str("body");
      const draft = optBoolean(KIND, sp, at("draft"));
      const message = str("message");
      return {
        op,
        branch,
        title: req("title"),
        ...(base ? { base } : {}),
        ...(body !== undefined ? { body } : {}),
        ...(draft !== undefined ? { draft } : {}),
        ...(files ? { files } : {}),
        ...(message ? { message } : {}),
      };
    }
    case "merge_pull_request": {
      const method = str("method") ?? "merge";
      if (method !== "merge" && method !== "squash" && method !== "rebase") {
        throw paramError(KIND, at("method"), `must be merge, squash or rebase, not '${method}'`);
      }
      const sha = str("sha");
      const commitTitle = str("commit_title");
      const commitMessage = str("commit_message");
      return {
        op,
        number: issueNumber("number", "required"),
        method,
        ...(sha ? { sha } : {}),
        ...(commitTitle !== undefined ? { commitTitle } : {}),
        ...(commitMessage !== undefined ? { commitMessage } : {}),
      };
    }
    case "comment":
      return { op, issue: issueNumber("issue", "default to the run's"), body: req("body") };
    case "create_issue": {
      const body = str("body");
      return {
        op,
        title: req("title"),
        ...(body !== undefined ? { body } : {}),
        labels: stringList(spec.labels, at("labels")),
        assignees: stringList(spec.assignees, at("assignees")),
      };
    }
    case "add_labels": {
      const labels = stringList(spec.labels, at("labels"));
      if (labels.length === 0) throw paramError(KIND, at("labels"), "must name at least one label");
      return { op, issue: issueNumber("issue", "default to the run's"), labels };
    }
    case "dispatch_workflow": {
      const workflow = req("workflow").replace(/^\.github\/workflows\//, "");
      const ref = str("ref")?.replace(/^refs\/heads\//, "");
      return { op, workflow, ...(ref ? { ref } : {}), inputs: optStringMap(KIND, sp, at("inputs")) };
    }
    default:
      return assertNever(op, "github operation");
  }
}

/** The spec's keys under `<op>.<key>` names, so parameter errors name the full path. */
function prefixed(spec: Params, op: string): Params {
  return Object.fromEntries(Object.entries(spec).map(([k, v]) => [`${op}.${k}`, v]));
}

function validBranch(name: string): boolean {
  return (
    name !== "" &&
    !/[\s~^:?*[\\\x00-\x1f\x7f]/.test(name) &&
    !name.includes("..") &&
    !name.includes("@{") &&
    !name.startsWith("/") &&
    !name.endsWith("/") &&
    !name.endsWith(".lock") &&
    !name.endsWith(".") &&
    !name.split("/").some((part) => part === "" || part.startsWith("."))
  );
}

function readFiles(v: unknown, name: string): Record<string, string | null> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isRecord(v)) throw paramError(KIND, name, `must be a map of path to content, not ${typeName(v)}`);
  const out: Record<string, string | null> = {};
  for (const [path, content] of Object.entries(v)) {
    const parts = path.split("/");
    if (path === "" || path.startsWith("/") || parts.some((p) => p === "" || p === "." || p === "..") || path.startsWith(".git/")) {
      throw paramError(KIND, `${name}.${path}`, "is not a relative path inside the repository");
    }
    if (content === null) out[path] = null;
    else if (typeof content === "string") out[path] = content;
    else if (typeof content === "number" || typeof content === "boolean") out[path] = String(content);
    else throw paramError(KIND, `${name}.${path}`, `must be the file's text (or null to delete it), not ${typeName(content)}`);
  }
  return out;
}

function stringList(v: unknown, name: string): string[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x, i) => {
    if (typeof x === "string" && x.trim() !== "") return x;
    if (typeof x === "number") return String(x);
    throw paramError(KIND, `${name}[${i}]`, `must be a non-empty string, not ${typeName(x)}`);
  });
}

// ---------------------------------------------------------------- API access

class Api {
  constructor(
    private readonly github: GitHubApi,
    readonly owner: string,
    readonly repo: string,
    private readonly op: GitHubOperation,
    private readonly deadline: Deadline,
    private readonly ctx: StepContext,
  ) {}

  async call(route: string, params: Record<string, unknown> = {}): Promise<any> {
    this.deadline.check();
    try {
      const res = await this.github.request(route, {
        owner: this.owner,
        repo: this.repo,
        ...params,
        request: { signal: this.deadline.signal },
      });
      return res.data;
    } catch (err) {
      if (this.deadline.signal.aborted) throw this.deadline.error();
      throw this.error(err);
    }
  }

  /** Like call, but a 404 answers undefined. */
  async find(route: string, params: Record<string, unknown> = {}): Promise<any> {
    try {
      return await this.call(route, params);
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  error(err: unknown): SluiceError {
    return githubError(`github ${this.op}`, err, this.ctx.now());
  }

  async defaultBranch(): Promise<string> {
    const data = await this.call("GET /repos/{owner}/{repo}");
    return String(data.default_branch);
  }
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { details?: { status?: unknown } })?.details?.status;
  return typeof s === "number" ? s : undefined;
}

// ---------------------------------------------------------------- operations

async function createPullRequest(api: Api, p: Extract<Plan, { op: "create_pull_request" }>): Promise<StepResult> {
  const base = p.base ?? (await api.defaultBranch());
  const branchRef = await api.find("GET /repos/{owner}/{repo}/git/ref/{ref}", { ref: `heads/${p.branch}` });
  const existing: string | undefined = branchRef?.object?.sha;
  let parent = existing;
  if (!parent) {
    const baseRef = await api.find("GET /repos/{owner}/{repo}/git/ref/{ref}", { ref: `heads/${base}` });
    if (!baseRef) {
      throw new NonRetriableError("REF_NOT_FOUND", `github create_pull_request: the base branch '${base}' does not exist in ${api.owner}/${api.repo}`, {
        base,
      });
    }
    parent = String(baseRef.object.sha);
  }
  const files = p.files ?? {};
  if (!existing && Object.keys(files).length === 0) {
    throw paramError(KIND, "create_pull_request.files", `is required: the branch '${p.branch}' does not exist yet`);
  }
  let head = parent;
  let commit: string | null = null;
  if (Object.keys(files).length > 0) {
    const parentCommit = await api.call("GET /repos/{owner}/{repo}/git/commits/{commit_sha}", { commit_sha: parent });
    const parentTree = String(parentCommit.tree.sha);
    const entries: { path: string; mode: "100644"; type: "blob"; sha: string | null }[] = [];
    for (const [path, content] of Object.entries(files)) {
      if (content === null) {
        entries.push({ path, mode: "100644", type: "blob", sha: null });
        continue;
      }
      const blob = await api.call("POST /repos/{owner}/{repo}/git/blobs", { content, encoding: "utf-8" });
      entries.push({ path, mode: "100644", type: "blob", sha: String(blob.sha) });
    }
    const tree = await api.call("POST /repos/{owner}/{repo}/git/trees", { base_tree: parentTree, tree: entries });
    if (tree.sha !== parentTree) {
      const created = await api.call("POST /repos/{owner}/{repo}/git/commits", {
        message: p.message ?? p.title,
        tree: tree.sha,
        parents: [parent],
      });
      commit = String(created.sha);
      head = commit;
    }
  }
  if (!existing) {
    await api.call("POST /repos/{owner}/{repo}/git/refs", { ref: `refs/heads/${p.branch}`, sha: head });
  } else if (commit) {
    await api.call("PATCH /repos/{owner}/{repo}/git/refs/{ref}", { ref: `heads/${p.branch}`, sha: commit, force: false });
  }
  const open = await openPullFor(api, p.branch);
  if (open) return { outputs: pullOutputs(open, { created: false, commit, branch: p.branch }) };
  try {
    const pr = await api.call("POST /repos/{owner}/{repo}/pulls", {
      title: p.title,
      head: p.branch,
      base,
      ...(p.body !== undefined ? { body: p.body } : {}),
      ...(p.draft !== undefined ? { draft: p.draft } : {}),
    });
    return { outputs: pullOutputs(pr, { created: true, commit, branch: p.branch }) };
  } catch (err) {
    // Opened meanwhile by a concurrent attempt: that one is ours too.
    if (statusOf(err) === 422) {
      const raced = await openPullFor(api, p.branch);
      if (raced) return { outputs: pullOutputs(raced, { created: false, commit, branch: p.branch }) };
    }
    throw err;
  }
}

async function openPullFor(api: Api, branch: string): Promise<any> {
  const list = await api.call("GET /repos/{owner}/{repo}/pulls", { head: `${api.owner}:${branch}`, state: "open", per_page: 10 });
  return Array.isArray(list) ? list[0] : undefined;
}

function pullOutputs(pr: any, extra: { created: boolean; commit: string | null; branch: string }): Record<string, unknown> {
  return {
    number: pr.number,
    url: pr.html_url,
    id: pr.id,
    sha: pr.head?.sha,
    branch: extra.branch,
    base: pr.base?.ref,
    created: extra.created,
    commit: extra.commit,
  };
}

async function mergePullRequest(api: Api, p: Extract<Plan, { op: "merge_pull_request" }>): Promise<StepResult> {
  try {
    const data = await api.call("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", {
      pull_number: p.number,
      merge_method: p.method,
      ...(p.sha ? { sha: p.sha } : {}),
      ...(p.commitTitle !== undefined ? { commit_title: p.commitTitle } : {}),
      ...(p.commitMessage !== undefined ? { commit_message: p.commitMessage } : {}),
    });
    return { outputs: { number: p.number, merged: data.merged === true, sha: data.sha, message: data.message, already_merged: false } };
  } catch (err) {
    // A retry after a merge whose answer was lost: the pull request is merged already.
    if (statusOf(err) === 405) {
      const pr = await api.call("GET /repos/{owner}/{repo}/pulls/{pull_number}", { pull_number: p.number });
      if (pr.merged === true) {
        return {
          outputs: { number: p.number, merged: true, sha: pr.merge_commit_sha, message: "Pull Request was already merged", already_merged: true, url: pr.html_url },
        };
      }
      const why = pr.state === "closed" ? "it is closed" : pr.draft ? "it is a draft" : pr.mergeable === false ? "it has conflicts" : "GitHub refused";
      const said = String((err as SluiceError).details.message ?? (err as Error).message);
      throw new NonRetriableError("HTTP_STATUS", `github merge_pull_request: pull request #${p.number} cannot be merged: ${why} (GitHub: ${said})`, {
        ...(err as SluiceError).details,
        state: pr.state,
        mergeable: pr.mergeable,
      });
    }
    // GitHub merges only the head named by `sha` (the commit the covering approval reviewed):
    // a head that moved since is a merge nobody approved.
    if (statusOf(err) === 409 && p.sha) {
      const said = String((err as SluiceError).details.message ?? (err as Error).message);
      throw new NonRetriableError(
        "HTTP_STATUS",
        `github merge_pull_request: pull request #${p.number} was not merged: its head is no longer ${p.sha}, the commit this merge is bound to (GitHub: ${said})`,
        { ...(err as SluiceError).details, sha: p.sha },
      );
    }
    throw err;
  }
}

async function comment(api: Api, p: Extract<Plan, { op: "comment" }>): Promise<StepResult> {
  const data = await api.call("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { issue_number: p.issue, body: p.body });
  return { outputs: { id: data.id, url: data.html_url, issue: p.issue } };
}

async function createIssue(api: Api, p: Extract<Plan, { op: "create_issue" }>): Promise<StepResult> {
  const data = await api.call("POST /repos/{owner}/{repo}/issues", {
    title: p.title,
    ...(p.body !== undefined ? { body: p.body } : {}),
    ...(p.labels.length > 0 ? { labels: p.labels } : {}),
    ...(p.assignees.length > 0 ? { assignees: p.assignees } : {}),
  });
  return { outputs: { number: data.number, url: data.html_url, id: data.id } };
}

async function addLabels(api: Api, p: Extract<Plan, { op: "add_labels" }>): Promise<StepResult> {
  const data = await api.call("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", { issue_number: p.issue, labels: p.labels });
  const labels = Array.isArray(data) ? data.map((l: { name?: unknown }) => String(l.name)) : p.labels;
  return { outputs: { issue: p.issue, labels } };
}

async function dispatchWorkflow(api: Api, p: Extract<Plan, { op: "dispatch_workflow" }>): Promise<StepResult> {
  const ref = p.ref ?? (await api.defaultBranch());
  await api.call("POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", {
    workflow_id: /^[0-9]+$/.test(p.workflow) ? Number(p.workflow) : p.workflow,
    ref,
    ...(Object.keys(p.inputs).length > 0 ? { inputs: p.inputs } : {}),
  });
  return { outputs: { dispatched: true, workflow: p.workflow, ref } };
}
