/**
 * Two servers on one PostgreSQL database, as `sluice serve` scales out: a delivery that reaches
 * both (GitHub redelivering to another process) is processed once, a run started through one is
 * finished by the cluster, and each run gets exactly one check run (the reporters of both
 * servers lease the outbox rows).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startPostgres, type TestPostgres } from "../support/postgres.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import { startApp, type AppHarness } from "./harness.js";

const HELLO = `name: hello
on:
  manual:
steps:
  - id: greet
    function:
      code: return "hello";
`;

let pg: TestPostgres;
let gh: GitHubFixture;
let a: AppHarness;
let b: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  pg = await startPostgres();
  gh = await startGitHub({ files: { ".github/flows/hello.yml": HELLO } });
  a = await startApp({ gh, env: { DATABASE_URL: pg.url } });
  b = await startApp({ gh, env: { DATABASE_URL: pg.url } });
});
afterAll(async () => {
  await a?.stop();
  await b?.stop();
  await gh?.sim.stop();
  await pg?.stop();
});
afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
});

/** Check runs created for a run, from the simulator's request log (a failed create counts too). */
function creates(runId: string): number {
  return gh.sim.requests.filter(
    (r) => r.method === "POST" && r.path === `/repos/${repo}/check-runs` && (r.body as { external_id?: unknown } | undefined)?.external_id === runId,
  ).length;
}

describe("two servers on PostgreSQL", { timeout: 60_000 }, () => {
  it("processes a delivery that reached both servers once", async () => {
    const issue = gh.sim.createIssue(repo, { title: "hello", user: "acme" });
    const payload = gh.sim.payloads.issueComment({ repo, issue: issue.number, sender: "acme", body: "/run hello" });
    const [ra, rb] = await Promise.all([a.send("issue_comment", payload, { deliveryId: "twice" }), b.send("issue_comment", payload, { deliveryId: "twice" })]);
    expect([ra.status, rb.status]).toEqual([200, 200]);
    const check = await a.waitFor("the run's check run", () => gh.sim.checkRunsOf(repo).find((c) => c.name === "sluice: hello" && c.status === "completed"));
    expect(check.conclusion).toBe("success");
    const reply = await a.waitFor("the reply", () => gh.sim.commentsOf(repo, issue.number).find((c) => c.user === "sluice[bot]"));
    expect(reply.body).toContain("started run");
    const runs = await a.sluice.store.listRuns({ repo, flow: "hello" });
    expect(runs).toHaveLength(1);
    expect(runs[0]?.status).toBe("succeeded");
    expect(gh.sim.commentsOf(repo, issue.number).filter((c) => c.user === "sluice[bot]")).toHaveLength(1);
    expect(creates(runs[0]!.id)).toBe(1);
  });

  it("creates exactly one check run per run, with both servers reporting", async () => {
    const before = new Set((await a.sluice.store.listRuns({ repo })).map((r) => r.id));
    const issues = Array.from({ length: 2 }, (_, i) => gh.sim.createIssue(repo, { title: `hello ${i}`, user: "acme" }));
    // One comment reaches each server; both reporters see every run in the store.
    await Promise.all(
      issues.map((issue, i) =>
        (i % 2 ? a : b).send("issue_comment", gh.sim.payloads.issueComment({ repo, issue: issue.number, sender: "acme", body: "/run hello" })),
      ),
    );
    const runs = await a.waitFor("every run finished and reported", async () => {
      const all = (await a.sluice.store.listRuns({ repo, flow: "hello" })).filter((r) => !before.has(r.id));
      if (all.length !== issues.length || all.some((r) => r.status !== "succeeded")) return undefined;
      const reported = all.every((r) => gh.sim.checkRunsOf(repo).some((c) => c.externalId === r.id && c.status === "completed"));
      return reported ? all : undefined;
    });
    for (const run of runs) {
      expect(gh.sim.checkRunsOf(repo).filter((c) => c.externalId === run.id), `check runs of ${run.id}`).toHaveLength(1);
      expect(creates(run.id), `check-run creates for ${run.id}`).toBe(1);
    }
  });
});
