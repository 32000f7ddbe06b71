/**
 * Two servers on one PostgreSQL database, as `sluice serve` scales out: a delivery that reaches
 * both (GitHub redelivering to another process) is processed once, and a run started through
 * one is finished by the cluster.
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
  });
});
