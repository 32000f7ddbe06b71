/** GitHub App endpoints: the app, its installations, installation tokens. */
import type { AddRoute } from "./simulator.js";
import { appShape, installationShape, repoShape } from "./shapes.js";
import { HttpError, notFound, type Req } from "./state.js";

function appOf(req: Req) {
  if (req.auth.kind !== "app") throw new HttpError(401, "A JSON web token could not be decoded");
  return req.auth.app;
}

export function appRoutes(add: AddRoute): void {
  add("GET /app", (req, sim) => ({ status: 200, body: appShape(sim, appOf(req)) }));

  add("GET /app/installations", (req, sim) => {
    const app = appOf(req);
    const page = sim.paginate(req, sim.installationsOf(app.id));
    return { status: 200, body: page.items.map((i) => installationShape(sim, i)), headers: page.headers };
  });

  add("GET /app/installations/{installation_id}", (req, sim) => {
    const app = appOf(req);
    const inst = sim.findInstallation(Number(req.params.installation_id));
    if (!inst || inst.appId !== app.id) throw notFound();
    return { status: 200, body: installationShape(sim, inst) };
  });

  add("POST /app/installations/{installation_id}/access_tokens", (req, sim) => {
    const app = appOf(req);
    const inst = sim.findInstallation(Number(req.params.installation_id));
    if (!inst || inst.appId !== app.id) throw notFound();
    const body = (req.body ?? {}) as { repositories?: string[]; repository_ids?: number[]; permissions?: Record<string, string> };
    let repos: string[] | undefined;
    if (body.repositories || body.repository_ids) {
      const all = sim.allRepos().filter((r) => sim.canSee({ kind: "installation", app, installation: inst, token: { kind: "installation", token: "", installationId: inst.id, expiresAt: Infinity } }, r));
      repos = [];
      for (const name of body.repositories ?? []) {
        const r = all.find((x) => x.name.toLowerCase() === name.toLowerCase());
        if (!r) throw new HttpError(422, `There is at least one repository that does not exist or is not accessible to the parent installation.`);
        repos.push(r.fullName);
      }
      for (const id of body.repository_ids ?? []) {
        const r = all.find((x) => x.id === id);
        if (!r) throw new HttpError(422, `There is at least one repository that does not exist or is not accessible to the parent installation.`);
        repos.push(r.fullName);
      }
    }
    const { token, expiresAt } = sim.createInstallationToken(inst.id, repos);
    return {
      status: 201,
      body: {
        token,
        expires_at: expiresAt,
        permissions: body.permissions ?? app.permissions,
        repository_selection: repos ? "selected" : inst.repositorySelection,
        ...(repos ? { repositories: repos.map((r) => repoShape(sim, sim.repo(r))) } : {}),
      },
    };
  });

  add("GET /repos/{owner}/{repo}/installation", (req, sim) => {
    const app = appOf(req);
    const repo = sim.findRepo(`${req.params.owner}/${req.params.repo}`);
    const inst = repo ? sim.installationsOf(app.id).find((i) => i.account.toLowerCase() === repo.owner.toLowerCase() && (i.repositorySelection === "all" || i.repositories.has(repo.fullName.toLowerCase()))) : undefined;
    if (!inst) throw notFound();
    return { status: 200, body: installationShape(sim, inst) };
  });

  const byAccount = (param: string) => (req: Req, sim: Parameters<Parameters<AddRoute>[1]>[1]) => {
    const app = appOf(req);
    const account = String(req.params[param]).toLowerCase();
    const inst = sim.installationsOf(app.id).find((i) => i.account.toLowerCase() === account);
    if (!inst) throw notFound();
    return { status: 200, body: installationShape(sim, inst) };
  };
  add("GET /orgs/{org}/installation", byAccount("org"));
  add("GET /users/{username}/installation", byAccount("username"));

  add("GET /installation/repositories", (req, sim) => {
    if (req.auth.kind !== "installation") throw new HttpError(403, "This endpoint needs an installation token");
    const auth = req.auth;
    const repos = sim.allRepos().filter((r) => sim.canSee(auth, r));
    const page = sim.paginate(req, repos);
    return {
      status: 200,
      headers: page.headers,
      body: {
        total_count: repos.length,
        repository_selection: auth.installation.repositorySelection,
        repositories: page.items.map((r) => repoShape(sim, r)),
      },
    };
  });
}
