/** Issues, issue comments, reactions and labels. */
import type { AddRoute, GitHubSimulator } from "./simulator.js";
import { queryValue } from "./simulator.js";
import { isoNow } from "./git-model.js";
import { commentShape, issueShape, labelShape, nodeId, reactionShape } from "./shapes.js";
import { HttpError, notFound, validationFailed, type Req, type SimComment, type SimIssue, type SimReaction, type SimRepo } from "./state.js";

const MAX_BODY = 65536;

function issueFor(req: Req, repo: SimRepo): SimIssue {
  const i = repo.issues.get(Number(req.params.issue_number));
  if (!i) throw notFound();
  return i;
}

function commentFor(sim: GitHubSimulator, req: Req, repo: SimRepo): SimComment {
  const c = sim.comments.get(Number(req.params.comment_id));
  if (!c || c.repo.toLowerCase() !== repo.fullName.toLowerCase()) throw notFound();
  return c;
}

function checkBody(body: string | undefined | null, resource: string): void {
  if (body !== undefined && body !== null && body.length > MAX_BODY) {
    throw validationFailed(resource, `Body is too long (maximum is ${MAX_BODY} characters)`, "custom", "body");
  }
}

function checkAssignees(sim: GitHubSimulator, repo: SimRepo, logins: string[]): void {
  for (const login of logins) {
    if (!sim.findUser(login) || (login !== repo.owner && !repo.permissions.has(login))) {
      throw validationFailed("Issue", `Invalid assignee: ${login}`, "invalid", "assignees");
    }
  }
}

/** Label names from any of the body forms GitHub accepts. */
function labelNames(body: unknown): string[] {
  const list = Array.isArray(body) ? body : typeof body === "string" ? [body] : ((body as { labels?: unknown[] })?.labels ?? []);
  return list.map((l) => (typeof l === "string" ? l : String((l as { name?: unknown }).name)));
}

function labelsOf(sim: GitHubSimulator, repo: SimRepo, i: SimIssue): Record<string, unknown>[] {
  return i.labels.map((n) => repo.labels.get(n)).flatMap((l) => (l ? [labelShape(sim, repo, l)] : []));
}

function addLabels(sim: GitHubSimulator, repo: SimRepo, i: SimIssue, names: string[]): void {
  for (const n of names) {
    sim.ensureLabel(repo, n);
    const canonical = [...repo.labels.keys()].find((k) => k.toLowerCase() === n.toLowerCase()) ?? n;
    if (!i.labels.includes(canonical)) i.labels.push(canonical);
  }
  i.updatedAt = isoNow();
}

function react(sim: GitHubSimulator, req: Req, list: SimReaction[]): { status: number; body: unknown } {
  const content = (req.body as { content: string }).content;
  const user = sim.actor(req);
  const existing = list.find((r) => r.user === user && r.content === content);
  if (existing) return { status: 200, body: reactionShape(sim, existing) };
  const id = sim.newId();
  const r: SimReaction = { id, nodeId: nodeId("Reaction", id), user, content, createdAt: isoNow() };
  list.push(r);
  return { status: 201, body: reactionShape(sim, r) };
}

export function issueRoutes(add: AddRoute): void {
  add("POST /repos/{owner}/{repo}/issues", (req, sim) => {
    const repo = sim.repoFor(req);
    const body = req.body as { title: string | number; body?: string; labels?: unknown[]; assignees?: string[]; assignee?: string | null };
    checkBody(body.body, "Issue");
    const assignees = [...(body.assignees ?? []), ...(body.assignee ? [body.assignee] : [])];
    checkAssignees(sim, repo, assignees);
    const issue = sim.createIssue(repo.fullName, {
      title: String(body.title),
      body: body.body ?? null,
      user: sim.actor(req),
      labels: labelNames(body.labels ?? []),
      assignees,
    });
    return {
      status: 201,
      headers: { location: `${sim.apiUrl}/repos/${repo.fullName}/issues/${issue.number}` },
      body: issueShape(sim, repo, issue),
    };
  });

  add("GET /repos/{owner}/{repo}/issues/{issue_number}", (req, sim) => {
    const repo = sim.repoFor(req);
    return { status: 200, body: issueShape(sim, repo, issueFor(req, repo)) };
  });

  add("GET /repos/{owner}/{repo}/issues", (req, sim) => {
    const repo = sim.repoFor(req);
    const state = queryValue(req, "state") ?? "open";
    const labels = (queryValue(req, "labels") ?? "").split(",").filter((l) => l !== "");
    const items = [...repo.issues.values()]
      .filter((i) => (state === "all" || i.state === state) && labels.every((l) => i.labels.includes(l)))
      .reverse();
    const page = sim.paginate(req, items);
    return { status: 200, headers: page.headers, body: page.items.map((i) => issueShape(sim, repo, i)) };
  });

  add("PATCH /repos/{owner}/{repo}/issues/{issue_number}", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = issueFor(req, repo);
    const body = req.body as {
      title?: string | number;
      body?: string | null;
      state?: "open" | "closed";
      state_reason?: string | null;
      labels?: unknown[];
      assignees?: string[];
    };
    checkBody(body.body, "Issue");
    if (body.assignees) checkAssignees(sim, repo, body.assignees);
    if (body.title !== undefined) i.title = String(body.title);
    if (body.body !== undefined) i.body = body.body;
    if (body.labels) {
      i.labels = [];
      addLabels(sim, repo, i, labelNames(body.labels));
    }
    if (body.assignees) i.assignees = [...body.assignees];
    if (body.state && body.state !== i.state) {
      i.state = body.state;
      i.closedAt = body.state === "closed" ? isoNow() : null;
      i.closedBy = body.state === "closed" ? sim.actor(req) : null;
      i.stateReason = body.state === "closed" ? (body.state_reason ?? "completed") : "reopened";
    }
    i.updatedAt = isoNow();
    return { status: 200, body: issueShape(sim, repo, i) };
  });

  add("GET /repos/{owner}/{repo}/issues/{issue_number}/comments", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = issueFor(req, repo);
    const since = queryValue(req, "since");
    const list = sim.commentsOf(repo.fullName, i.number).filter((c) => !since || c.updatedAt >= since);
    const page = sim.paginate(req, list);
    return { status: 200, headers: page.headers, body: page.items.map((c) => commentShape(sim, repo, c)) };
  });

  add("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = issueFor(req, repo);
    const body = req.body as { body: string };
    checkBody(body.body, "IssueComment");
    if (i.locked) throw new HttpError(403, "Unable to create comment because issue is locked.");
    const c = sim.addComment(repo.fullName, i.number, { user: sim.actor(req), body: body.body });
    return {
      status: 201,
      headers: { location: `${sim.apiUrl}/repos/${repo.fullName}/issues/comments/${c.id}` },
      body: commentShape(sim, repo, c),
    };
  });

  add("GET /repos/{owner}/{repo}/issues/comments/{comment_id}", (req, sim) => {
    const repo = sim.repoFor(req);
    return { status: 200, body: commentShape(sim, repo, commentFor(sim, req, repo)) };
  });

  add("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", (req, sim) => {
    const repo = sim.repoFor(req);
    const c = commentFor(sim, req, repo);
    const body = req.body as { body: string };
    checkBody(body.body, "IssueComment");
    c.body = body.body;
    c.updatedAt = isoNow();
    return { status: 200, body: commentShape(sim, repo, c) };
  });

  add("DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}", (req, sim) => {
    const repo = sim.repoFor(req);
    const c = commentFor(sim, req, repo);
    sim.comments.delete(c.id);
    return { status: 204 };
  });

  add("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", (req, sim) => {
    const repo = sim.repoFor(req);
    return react(sim, req, commentFor(sim, req, repo).reactions);
  });

  add("GET /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", (req, sim) => {
    const repo = sim.repoFor(req);
    const content = queryValue(req, "content");
    const list = commentFor(sim, req, repo).reactions.filter((r) => !content || r.content === content);
    const page = sim.paginate(req, list);
    return { status: 200, headers: page.headers, body: page.items.map((r) => reactionShape(sim, r)) };
  });

  add("POST /repos/{owner}/{repo}/issues/{issue_number}/reactions", (req, sim) => {
    const repo = sim.repoFor(req);
    return react(sim, req, issueFor(req, repo).reactions);
  });

  add("GET /repos/{owner}/{repo}/issues/{issue_number}/labels", (req, sim) => {
    const repo = sim.repoFor(req);
    return { status: 200, body: labelsOf(sim, repo, issueFor(req, repo)) };
  });

  add("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = issueFor(req, repo);
    addLabels(sim, repo, i, labelNames(req.body));
    return { status: 200, body: labelsOf(sim, repo, i) };
  });

  add("PUT /repos/{owner}/{repo}/issues/{issue_number}/labels", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = issueFor(req, repo);
    i.labels = [];
    addLabels(sim, repo, i, labelNames(req.body));
    return { status: 200, body: labelsOf(sim, repo, i) };
  });

  add("DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}", (req, sim) => {
    const repo = sim.repoFor(req);
    const i = issueFor(req, repo);
    const name = req.params.name ?? "";
    const idx = i.labels.findIndex((l) => l.toLowerCase() === name.toLowerCase());
    if (idx < 0) throw new HttpError(404, "Label does not exist");
    i.labels.splice(idx, 1);
    i.updatedAt = isoNow();
    return { status: 200, body: labelsOf(sim, repo, i) };
  });
}
