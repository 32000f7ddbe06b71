/** Check runs: create, update (annotations accumulate, actions are kept), get, list. */
import type { AddRoute, GitHubSimulator } from "./simulator.js";
import { queryValue } from "./simulator.js";
import { isoNow } from "./git-model.js";
import { checkRunShape, nodeId } from "./shapes.js";
import { HttpError, notFound, type Req, type SimAnnotation, type SimCheckRun, type SimRepo } from "./state.js";

interface CheckBody {
  name?: string;
  head_sha?: string;
  details_url?: string;
  external_id?: string;
  status?: SimCheckRun["status"];
  started_at?: string;
  conclusion?: string;
  completed_at?: string;
  output?: {
    title?: string;
    summary?: string;
    text?: string;
    annotations?: Omit<SimAnnotation, "blob_href">[];
  };
  actions?: { label: string; description: string; identifier: string }[];
}

function appId(req: Req): number {
  if (req.auth.kind !== "installation") throw new HttpError(403, "You must authenticate via a GitHub App.");
  return req.auth.app.id;
}

function apply(sim: GitHubSimulator, repo: SimRepo, run: SimCheckRun, body: CheckBody): void {
  // Check everything before changing anything, so a refused update leaves the run as it was.
  const nextStatus = body.conclusion !== undefined ? "completed" : (body.status ?? run.status);
  if (nextStatus === "completed" && !(body.conclusion ?? run.conclusion)) {
    throw new HttpError(422, "Invalid request.\n\n\"conclusion\" wasn't supplied.");
  }
  for (const a of body.output?.annotations ?? []) {
    if (a.start_line !== a.end_line && (a.start_column !== undefined || a.end_column !== undefined)) {
      throw new HttpError(422, "Invalid request.\n\nstart_column and end_column may only be given when start_line equals end_line.");
    }
  }
  if (body.name !== undefined) run.name = body.name;
  if (body.details_url !== undefined) run.detailsUrl = body.details_url;
  if (body.external_id !== undefined) run.externalId = body.external_id;
  if (body.started_at !== undefined) run.startedAt = body.started_at;
  if (body.status !== undefined) run.status = body.status;
  if (body.conclusion !== undefined) {
    run.conclusion = body.conclusion;
    run.status = "completed";
  }
  if (body.completed_at !== undefined) run.completedAt = body.completed_at;
  if (run.status === "completed") run.completedAt ??= isoNow();
  if (body.output) {
    if (body.output.title !== undefined) run.output.title = body.output.title;
    if (body.output.summary !== undefined) run.output.summary = body.output.summary;
    if (body.output.text !== undefined) run.output.text = body.output.text;
    for (const a of body.output.annotations ?? []) {
      run.annotations.push({ ...a, blob_href: `${sim.url}/${repo.fullName}/blob/${run.headSha}/${a.path}` });
    }
  }
  if (body.actions) run.actions = body.actions.map((a) => ({ ...a }));
  run.writes++;
}

function runFor(sim: GitHubSimulator, req: Req, repo: SimRepo): SimCheckRun {
  const run = sim.checkRuns.get(Number(req.params.check_run_id));
  if (!run || run.repo.toLowerCase() !== repo.fullName.toLowerCase()) throw notFound();
  return run;
}

export function checkRoutes(add: AddRoute): void {
  add("POST /repos/{owner}/{repo}/check-runs", (req, sim) => {
    const repo = sim.repoFor(req);
    const app = appId(req);
    const body = req.body as CheckBody & { name: string; head_sha: string };
    if (!repo.git.commit(body.head_sha)) throw new HttpError(422, `No commit found for SHA: ${body.head_sha}`);
    const id = sim.newId();
    const run: SimCheckRun = {
      id,
      nodeId: nodeId("CheckRun", id),
      repo: repo.fullName,
      headSha: body.head_sha,
      name: body.name,
      status: "queued",
      conclusion: null,
      externalId: "",
      detailsUrl: null,
      startedAt: isoNow(),
      completedAt: null,
      output: { title: null, summary: null, text: null },
      annotations: [],
      actions: [],
      appId: app,
      checkSuiteId: 5_000_000 + parseInt(body.head_sha.slice(0, 6), 16),
      writes: 0,
    };
    apply(sim, repo, run, body);
    sim.checkRuns.set(id, run);
    return { status: 201, body: checkRunShape(sim, repo, run) };
  });

  add("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", (req, sim) => {
    const repo = sim.repoFor(req);
    const app = appId(req);
    const run = runFor(sim, req, repo);
    if (run.appId !== app) throw new HttpError(403, "Invalid app_id: a check run can be updated only by the app that created it");
    const body = req.body as CheckBody;
    apply(sim, repo, run, body);
    return { status: 200, body: checkRunShape(sim, repo, run) };
  });

  add("GET /repos/{owner}/{repo}/check-runs/{check_run_id}", (req, sim) => {
    const repo = sim.repoFor(req);
    return { status: 200, body: checkRunShape(sim, repo, runFor(sim, req, repo)) };
  });

  add("GET /repos/{owner}/{repo}/check-runs/{check_run_id}/annotations", (req, sim) => {
    const repo = sim.repoFor(req);
    const run = runFor(sim, req, repo);
    const page = sim.paginate(req, run.annotations);
    return {
      status: 200,
      headers: page.headers,
      body: page.items.map((a) => ({
        path: a.path,
        start_line: a.start_line,
        end_line: a.end_line,
        start_column: a.start_column ?? null,
        end_column: a.end_column ?? null,
        annotation_level: a.annotation_level,
        title: a.title ?? null,
        message: a.message,
        raw_details: a.raw_details ?? null,
        blob_href: a.blob_href,
      })),
    };
  });

  add("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", (req, sim) => {
    const repo = sim.repoFor(req);
    const sha = sim.resolveRef(repo.fullName, req.params.ref ?? "");
    if (!sha) throw new HttpError(422, `No commit found for SHA: ${req.params.ref}`);
    const name = queryValue(req, "check_name");
    const status = queryValue(req, "status");
    const app = queryValue(req, "app_id");
    const filter = queryValue(req, "filter") ?? "latest";
    let runs = sim
      .checkRunsOf(repo.fullName, sha)
      .filter((r) => (!name || r.name === name) && (!status || r.status === status) && (!app || String(r.appId) === app))
      .reverse();
    if (filter === "latest") {
      const seen = new Set<string>();
      runs = runs.filter((r) => (seen.has(r.name) ? false : (seen.add(r.name), true)));
    }
    const page = sim.paginate(req, runs);
    return {
      status: 200,
      headers: page.headers,
      body: { total_count: runs.length, check_runs: page.items.map((r) => checkRunShape(sim, repo, r)) },
    };
  });
}
