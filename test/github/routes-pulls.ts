/** Pull requests: create, list, get, update, files, commits, merge, reviews. */
import type { AddRoute, GitHubSimulator } from "./simulator.js";
import { queryValue } from "./simulator.js";
import { isoNow } from "./git-model.js";
import { commitShape, fileChangeShape, pullShape, pullSimpleShape, reviewShape } from "./shapes.js";
import { HttpError, notFound, PERMISSION_ORDER, type Req, type SimIssue, type SimRepo } from "./state.js";

type PullIssue = SimIssue & { pull: NonNullable<SimIssue["pull"]> };

function pullFor(req: Req, repo: SimRepo): PullIssue {
  const i = repo.issues.get(Number(req.params.pull_number));
  if (!i?.pull) throw notFound();
  return i as PullIssue;
}

function canWrite(sim: GitHubSimulator, req: Req, repo: SimRepo): boolean {
  if (req.auth.kind === "installation") return true;
  if (req.auth.kind !== "user") return false;
  const login = req.auth.user.login;
  if (login.toLowerCase() === repo.owner.toLowerCase()) return true;
  const perm = repo.permissions.get(login) ?? "none";
  return PERMISSION_ORDER.indexOf(perm) >= PERMISSION_ORDER.indexOf("write");
}

export function pullRoutes(add: AddRoute): void {
  add("POST /repos/{owner}/{repo}/pulls", (req, sim) => {
    const repo = sim.repoFor(req);
    const body = req.body as { title?: string; head: string; base: string; body?: string; draft?: boolean; maintainer_can_modify?: boolean; issue?: number };
    if (body.title === undefined && body.issue === undefined) {
      throw new HttpError(422, "Validation Failed", { errors: [{ resource: "PullRequest", field: "title", code: "missing_field" }] });
    }
    if (body.body && body.body.length > 65536) {
      throw new HttpError(422, "Validation Failed", {
        errors: [{ resource: "PullRequest", field: "body", code: "custom", message: "Body is too long (maximum is 65536 characters)" }],
      });
    }
    const issue = sim.createPullRequest(repo.fullName, {
      head: body.head,
      base: body.base,
      title: body.title ?? `#${body.issue}`,
      body: body.body ?? null,
      user: sim.actor(req),
      draft: body.draft ?? false,
      maintainerCanModify: body.maintainer_can_modify ?? true,
    });
    return {
      status: 201,
      headers: { location: `${sim.apiUrl}/repos/${repo.fullName}/pulls/${issue.number}` },
      body: pullShape(sim, repo, issue),
    };
  });

  add("GET /repos/{owner}/{repo}/pulls", (req, sim) => {
    const repo = sim.repoFor(req);
    const state = queryValue(req, "state") ?? "open";
    const head = queryValue(req, "head");
    const base = queryValue(req, "base");
    const direction = queryValue(req, "direction") ?? "desc";
    let items = [...repo.issues.values()].filter((i): i is PullIssue => {
      if (!i.pull) return false;
      if (state !== "all" && i.state !== state) return false;
      if (base && i.pull.baseRef !== base) return false;
      if (head) {
        const [owner, branch] = head.includes(":") ? head.split(":", 2) : [undefined, head];
        if (owner && owner.toLowerCase() !== i.pull.headRepo.split("/")[0]?.toLowerCase()) return false;
        if (branch && i.pull.headRef !== branch) return false;
      }
      return true;
    });
    if (direction === "desc") items = items.reverse();
    const page = sim.paginate(req, items);
    return { status: 200, headers: page.headers, body: page.items.map((i) => pullSimpleShape(sim, repo, i)) };
  });

  add("GET /repos/{owner}/{repo}/pulls/{pull_number}", (req, sim) => {
    const repo = sim.repoFor(req);
    return { status: 200, body: pullShape(sim, repo, pullFor(req, repo)) };
  });

  add("PATCH /repos/{owner}/{repo}/pulls/{pull_number}", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = pullFor(req, repo);
    const body = req.body as { title?: string; body?: string; state?: "open" | "closed"; base?: string };
    if (body.base !== undefined) {
      if (!sim.branchSha(repo.fullName, body.base)) {
        throw new HttpError(422, "Validation Failed", { errors: [{ resource: "PullRequest", field: "base", code: "invalid" }] });
      }
      i.pull.baseRef = body.base;
    }
    if (body.title !== undefined) i.title = body.title;
    if (body.body !== undefined) i.body = body.body;
    if (body.state && body.state !== i.state) {
      if (i.pull.merged) throw new HttpError(422, "Validation Failed", { errors: [{ resource: "PullRequest", code: "custom", message: "Cannot reopen a merged pull request" }] });
      i.state = body.state;
      i.closedAt = body.state === "closed" ? isoNow() : null;
      if (body.state === "open") {
        const sha = sim.branchSha(i.pull.headRepo, i.pull.headRef);
        if (sha) i.pull.headSha = sha;
      }
    }
    i.updatedAt = isoNow();
    return { status: 200, body: pullShape(sim, repo, i) };
  });

  add("GET /repos/{owner}/{repo}/pulls/{pull_number}/files", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = pullFor(req, repo);
    const page = sim.paginate(req, sim.pullFiles(repo.fullName, i.number));
    return { status: 200, headers: page.headers, body: page.items.map((f) => fileChangeShape(sim, repo, i.pull.headSha, f)) };
  });

  add("GET /repos/{owner}/{repo}/pulls/{pull_number}/commits", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = pullFor(req, repo);
    const page = sim.paginate(req, sim.pullCommits(repo.fullName, i.number));
    return { status: 200, headers: page.headers, body: page.items.map((s) => commitShape(sim, repo, s)) };
  });

  add("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = pullFor(req, repo);
    if (!canWrite(sim, req, repo)) throw new HttpError(403, "Must have write access to the repository to merge.");
    const body = (req.body ?? {}) as { commit_title?: string; commit_message?: string; sha?: string; merge_method?: "merge" | "squash" | "rebase" };
    const { sha } = sim.mergePullRequest(repo.fullName, i.number, {
      method: body.merge_method ?? "merge",
      user: sim.actor(req),
      ...(body.sha !== undefined ? { sha: body.sha } : {}),
      ...(body.commit_title !== undefined ? { commitTitle: body.commit_title } : {}),
      ...(body.commit_message !== undefined ? { commitMessage: body.commit_message } : {}),
    });
    return { status: 200, body: { sha, merged: true, message: "Pull Request successfully merged" } };
  });

  add("GET /repos/{owner}/{repo}/pulls/{pull_number}/merge", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = pullFor(req, repo);
    if (!i.pull.merged) throw notFound();
    return { status: 204 };
  });

  add("GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = pullFor(req, repo);
    const page = sim.paginate(req, i.pull.reviews);
    return { status: 200, headers: page.headers, body: page.items.map((r) => reviewShape(sim, repo, i.number, r)) };
  });

  add("POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = pullFor(req, repo);
    const body = (req.body ?? {}) as { body?: string; event?: "APPROVE" | "REQUEST_CHANGES" | "COMMENT"; commit_id?: string };
    const user = sim.actor(req);
    if (user === i.user && (body.event === "APPROVE" || body.event === "REQUEST_CHANGES")) {
      throw new HttpError(422, "Unprocessable Entity", {
        errors: [`Can not ${body.event === "APPROVE" ? "approve" : "request changes on"} your own pull request`],
      });
    }
    const state = body.event === "APPROVE" ? "APPROVED" : body.event === "REQUEST_CHANGES" ? "CHANGES_REQUESTED" : body.event === "COMMENT" ? "COMMENTED" : "PENDING";
    const r = sim.addReview(repo.fullName, i.number, {
      user,
      state,
      body: body.body ?? "",
      ...(body.commit_id ? { commitId: body.commit_id } : {}),
    });
    return { status: 200, body: reviewShape(sim, repo, i.number, r) };
  });
}
