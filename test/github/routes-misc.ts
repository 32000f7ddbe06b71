/** People and permissions, teams, workflow dispatches, rate limit. */
import { parse as parseYaml } from "yaml";
import type { AddRoute, GitHubSimulator } from "./simulator.js";
import { isoNow } from "./git-model.js";
import { pullSimpleShape, userShape } from "./shapes.js";
import { HttpError, notFound, type Permission, type SimUser } from "./state.js";

/** The coarse `permission` field GitHub reports next to the fine `role_name`. */
function coarse(p: Permission): "admin" | "write" | "read" | "none" {
  switch (p) {
    case "admin":
      return "admin";
    case "maintain":
    case "write":
      return "write";
    case "triage":
    case "read":
      return "read";
    case "none":
      return "none";
  }
}

export function miscRoutes(add: AddRoute): void {
  add("GET /repos/{owner}/{repo}/collaborators/{username}/permission", (req, sim) => {
    const repo = sim.repoFor(req);
    const user = sim.findUser(req.params.username ?? "");
    if (!user) throw notFound();
    const role: Permission =
      user.login.toLowerCase() === repo.owner.toLowerCase()
        ? "admin"
        : (repo.permissions.get(user.login) ?? (repo.private ? "none" : "read"));
    return {
      status: 200,
      body: {
        permission: coarse(role),
        role_name: role,
        user: {
          ...userShape(sim, user),
          permissions: {
            admin: role === "admin",
            maintain: role === "admin" || role === "maintain",
            push: coarse(role) === "admin" || coarse(role) === "write",
            triage: role !== "none" && role !== "read",
            pull: role !== "none",
          },
          role_name: role,
        },
      },
    };
  });

  add("GET /repos/{owner}/{repo}/collaborators/{username}", (req, sim) => {
    const repo = sim.repoFor(req);
    const login = req.params.username ?? "";
    const isCollaborator = login.toLowerCase() === repo.owner.toLowerCase() || repo.permissions.has(sim.findUser(login)?.login ?? "");
    if (!isCollaborator) throw notFound();
    return { status: 204 };
  });

  add("GET /orgs/{org}/teams/{team_slug}/memberships/{username}", (req, sim) => {
    const members = sim.teamMembers(req.params.org ?? "", req.params.team_slug ?? "");
    const login = (req.params.username ?? "").toLowerCase();
    const role = members?.get(login);
    if (!members || !role) throw notFound();
    return {
      status: 200,
      body: {
        url: `${sim.apiUrl}/organizations/${sim.user(req.params.org ?? "").id}/team/${req.params.team_slug}/memberships/${req.params.username}`,
        role,
        state: "active",
      },
    };
  });

  add("GET /orgs/{org}/teams/{team_slug}/members", (req, sim) => {
    const members = sim.teamMembers(req.params.org ?? "", req.params.team_slug ?? "");
    if (!members) throw notFound();
    const page = sim.paginate(req, [...members.keys()]);
    return { status: 200, headers: page.headers, body: page.items.map((l) => userShape(sim, sim.user(l))) };
  });

  add("GET /users/{username}", (req, sim) => {
    const user = sim.findUser(req.params.username ?? "");
    if (!user) throw notFound();
    return { status: 200, body: profile(sim, user) };
  });

  // The token's own user; an installation acts as its app's bot, which this endpoint refuses.
  add("GET /user", (req, sim) => {
    if (req.auth.kind !== "user") throw new HttpError(403, "Resource not accessible by integration");
    return { status: 200, body: profile(sim, req.auth.user) };
  });

  add("GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls", (req, sim) => {
    const repo = sim.repoFor(req);
    const sha = sim.resolveRef(repo.fullName, req.params.commit_sha ?? "");
    if (!sha) throw new HttpError(422, `No commit found for SHA: ${req.params.commit_sha}`);
    const pulls = [...repo.issues.values()].filter(
      (i) => i.pull && (i.pull.headSha === sha || i.pull.mergeCommitSha === sha || sim.pullCommits(repo.fullName, i.number).includes(sha)),
    );
    return { status: 200, body: pulls.map((i) => pullSimpleShape(sim, repo, i)) };
  });

  add("POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", (req, sim) => {
    const repo = sim.repoFor(req);
    const body = req.body as { ref: string; inputs?: Record<string, unknown>; return_run_details?: boolean };
    const id = req.params.workflow_id ?? "";
    const file = /^\d+$/.test(id) ? undefined : id.replace(/^\.github\/workflows\//, "");
    const text = file ? sim.readFile(repo.fullName, repo.defaultBranch, `.github/workflows/${file}`) : undefined;
    if (text === undefined) throw notFound();
    const sha = sim.resolveRef(repo.fullName, body.ref);
    if (!sha) throw new HttpError(422, `No ref found for: ${body.ref}`);
    let doc: any;
    try {
      doc = parseYaml(text);
    } catch {
      throw new HttpError(422, "Workflow file is not valid YAML");
    }
    const on = doc?.on ?? doc?.true;
    const hasDispatch = on === "workflow_dispatch" || (Array.isArray(on) && on.includes("workflow_dispatch")) || (on && typeof on === "object" && "workflow_dispatch" in on);
    if (!hasDispatch) throw new HttpError(422, "Workflow does not have 'workflow_dispatch' trigger");
    const declared: Record<string, { required?: boolean }> = (on && typeof on === "object" && !Array.isArray(on) ? on.workflow_dispatch?.inputs : undefined) ?? {};
    const inputs = body.inputs ?? {};
    const unexpected = Object.keys(inputs).filter((k) => !(k in declared));
    if (unexpected.length > 0) throw new HttpError(422, `Unexpected inputs provided: ${JSON.stringify(unexpected)}`);
    const missing = Object.entries(declared).filter(([k, d]) => d?.required && !(k in inputs)).map(([k]) => k);
    if (missing.length > 0) throw new HttpError(422, `Required input '${missing[0]}' not provided`);
    sim.recordDispatch({ repo: repo.fullName, workflow: file as string, ref: body.ref, inputs, actor: sim.actor(req), at: isoNow() });
    if (body.return_run_details) {
      const runId = sim.newId();
      return {
        status: 200,
        body: {
          workflow_run_id: runId,
          run_url: `${sim.apiUrl}/repos/${repo.fullName}/actions/runs/${runId}`,
          html_url: `${sim.url}/${repo.fullName}/actions/runs/${runId}`,
        },
      };
    }
    return { status: 204 };
  });

  add("GET /rate_limit", () => {
    const reset = Math.floor(Date.now() / 1000) + 3600;
    const core = { limit: 5000, used: 0, remaining: 5000, reset };
    return { status: 200, body: { resources: { core, search: { ...core, limit: 30, remaining: 30 } }, rate: core } };
  });
}

/** A user's public profile, as `GET /users/{username}` and `GET /user` answer it. */
function profile(sim: GitHubSimulator, user: SimUser): Record<string, unknown> {
  return {
    ...userShape(sim, user),
    name: user.name,
    company: null,
    blog: "",
    location: null,
    email: user.email,
    hireable: null,
    bio: null,
    twitter_username: null,
    public_repos: sim.allRepos().filter((r) => r.owner.toLowerCase() === user.login.toLowerCase()).length,
    public_gists: 0,
    followers: 0,
    following: 0,
    created_at: "2020-01-01T00:00:00Z",
    updated_at: "2020-01-01T00:00:00Z",
  };
}
