/**
 * Two servers on one PostgreSQL database spend one GitHub budget (SPEC §5 "The GitHub budget"):
 * a burst of `/run` commands split between them, against the simulator enforcing the same limits
 * as the budget (in small windows). Together they never break a limit (no 403, no hold), never
 * have more requests in flight than the cap, and every check run and explaining reply arrives.
 * With a budget per process (as Probot's throttle is), two servers would spend twice the limit.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isTerminal } from "../../src/ports/run-store.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import { isContentCreating, Limits } from "../github/limits.js";
import { startPostgres, type TestPostgres } from "../support/postgres.js";
import { startApp, waitFor, type AppHarness } from "./harness.js";

const COUNT = `name: count
on:
  manual:
steps:
  - id: add
    kv: { incr: { key: runs, by: 1 } }
`;

const repo = "acme/widgets";
let pg: TestPostgres;
let gh: GitHubFixture;
let a: AppHarness;
let b: AppHarness;
const env = { SLUICE_GITHUB_WRITES: "6/1s,30/10s", SLUICE_GITHUB_IN_FLIGHT: "4" };

beforeAll(async () => {
  pg = await startPostgres();
  gh = await startGitHub({ files: { "README.md": "# widgets\n", ".github/flows/count.yml": COUNT } });
  gh.sim.setPermission(repo, "ann", "write");
  gh.sim.enforceLimits({ contentCreating: [{ limit: 6, windowMs: 1_000 }, { limit: 30, windowMs: 10_000 }], maxInFlight: 4, retryAfterSeconds: 2 });
  gh.sim.latencyMs = 20;
  a = await startApp({ gh, env: { ...env, DATABASE_URL: pg.url } });
  b = await startApp({ gh, env: { ...env, DATABASE_URL: pg.url } });
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

describe("two servers on one PostgreSQL database", { timeout: 120_000 }, () => {
  it("together stay within one installation's budget, and every check run and explaining reply arrives", async () => {
    const { sim } = gh;
    const issues = Array.from({ length: 30 }, (_, i) => sim.createIssue(repo, { title: `shared ${i}`, user: "ann" }).number);
    // Half of them ask for a flow that does not exist: both servers' outboxes then send replies at once.
    const bodies = issues.map((_, i) => (i % 2 ? "/run nowhere" : "/run count"));
    const from = sim.requests.length;
    let next = 0;
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let i = next++; i < issues.length; i = next++) {
          const server = i % 2 ? a : b;
          const res = await server.send("issue_comment", sim.payloads.issueComment({ repo, issue: issues[i]!, sender: "ann", body: bodies[i]! }));
          expect(res.status).toBe(200);
        }
      }),
    );
    const runs = await waitFor(
      "every run to finish",
      async () => {
        const all = await a.sluice.store.listRuns({ repo, flow: "count" });
        return all.length === 15 && all.every((r) => isTerminal(r.status)) ? all : undefined;
      },
      60_000,
    );
    await waitFor("every check run to be final", () => runs.every((r) => sim.checkRunsOf(repo).some((c) => c.externalId === r.id && c.status === "completed")), 60_000);
    await waitFor("every explaining reply", () => issues.filter((_, i) => i % 2).every((n) => a.replies(repo, n).some((t) => t.includes("nowhere"))), 60_000);
    for (const r of runs) expect(sim.checkRunsOf(repo).filter((c) => c.externalId === r.id)).toHaveLength(1);

    // Together the two servers broke no limit.
    const log = sim.requests.slice(from).filter((r) => r.auth === `installation:${gh.installation.id}`);
    const creates = log.filter((r) => isContentCreating(r.method, r.path));
    expect(sim.limits.events).toEqual([]);
    expect(log.filter((r) => r.status === 403 || r.status === 429)).toEqual([]);
    expect(Limits.mostInWindow(creates.map((r) => r.at!), 1_000)).toBeLessThanOrEqual(6);
    expect(Limits.mostInWindow(creates.map((r) => r.at!), 10_000)).toBeLessThanOrEqual(30);
    expect(sim.limits.maxInFlightSeen.get(`installation:${gh.installation.id}`)).toBeLessThanOrEqual(4);
  });
});
