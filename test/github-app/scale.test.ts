/**
 * GitHub at scale, end to end against the simulator with GitHub's secondary limits enforced (in
 * small windows, so the tests stay fast): a burst of `/run` commands in as many issues runs at
 * engine speed while the check runs follow at GitHub's pace, every check run and every reply
 * that explains something arrives, acknowledgements give way under pressure, and no request at
 * all is made while GitHub holds the app back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isTerminal } from "../../src/ports/run-store.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import { isContentCreating } from "../github/limits.js";
import { startApp, waitFor, type AppHarness } from "./harness.js";

const COUNT = `name: count
on:
  manual:
steps:
  - id: add
    kv: { incr: { key: runs, by: 1 } }
`;

const repo = "acme/widgets";
const installation = (gh: GitHubFixture) => `installation:${gh.installation.id}`;

/** Sends `bodies[i]` as a comment of `issues[i]`, a few at a time, like a burst of webhooks. */
async function burst(app: AppHarness, issues: number[], bodies: string[]): Promise<void> {
  let next = 0;
  const sender = async () => {
    for (let i = next++; i < issues.length; i = next++) {
      const res = await app.send("issue_comment", app.gh.sim.payloads.issueComment({ repo, issue: issues[i]!, sender: "ann", body: bodies[i]! }));
      expect(res.status).toBe(200);
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));
}

describe("a burst of /run commands under GitHub's limits", { timeout: 120_000 }, () => {
  let app: AppHarness;

  beforeAll(async () => {
    const gh = await startGitHub({ files: { "README.md": "# widgets\n", ".github/flows/count.yml": COUNT } });
    gh.sim.setPermission(repo, "ann", "write");
    // GitHub's limits, scaled down: 20 content-creating requests a second, 60 in 5 s, 10 in flight.
    gh.sim.enforceLimits({ contentCreating: [{ limit: 20, windowMs: 1_000 }, { limit: 60, windowMs: 5_000 }], maxInFlight: 10, retryAfterSeconds: 2 });
    gh.sim.latencyMs = 20;
    app = await startApp({ gh, env: { SLUICE_GITHUB_WRITES: "20/1s,60/5s", SLUICE_GITHUB_IN_FLIGHT: "10" } });
  });
  afterAll(async () => {
    if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
    await app?.stop();
    await app?.gh.sim.stop();
  });
  afterEach(() => {
    expect(app.gh.sim.violations).toEqual([]);
  });

  it("100 commands in 100 issues: every run finishes, every check run and every explaining reply arrives, nothing breaks a limit", async () => {
    const { sim } = app.gh;
    const issues = Array.from({ length: 100 }, (_, i) => sim.createIssue(repo, { title: `burst ${i}`, user: "ann" }).number);
    // Every tenth asks for a flow that does not exist: its reply explains, and must arrive.
    const bodies = issues.map((_, i) => (i % 10 === 9 ? "/run no-such-flow" : "/run count"));
    const from = sim.requests.length;
    await burst(app, issues, bodies);

    const runs = await waitFor(
      "every run to finish",
      async () => {
        const all = await app.sluice.store.listRuns({ repo, flow: "count", limit: 500 });
        return all.length === 90 && all.every((r) => isTerminal(r.status)) ? all : undefined;
      },
      60_000,
    );
    expect(runs.every((r) => r.status === "succeeded")).toBe(true);
    // The check runs follow at GitHub's pace: one each, completed, created once.
    await waitFor(
      "every check run to be final",
      () => runs.every((r) => sim.checkRunsOf(repo).some((c) => c.externalId === r.id && c.status === "completed")),
      60_000,
    );
    for (const r of runs) expect(sim.checkRunsOf(repo).filter((c) => c.externalId === r.id)).toHaveLength(1);
    const explaining = issues.filter((_, i) => i % 10 === 9);
    await waitFor("every explaining reply", () => explaining.every((n) => app.replies(repo, n).some((b) => b.includes("no-such-flow"))), 60_000);

    // Within every limit: no breach, so no hold and no 403 at all.
    expect(sim.limits.events).toEqual([]);
    expect(sim.limits.maxInFlightSeen.get(installation(app.gh))).toBeLessThanOrEqual(10);
    const log = sim.requests.slice(from).filter((r) => r.auth === installation(app.gh));
    expect(log.filter((r) => r.status === 403 || r.status === 429)).toEqual([]);
    // What a run cost: its check run is created once, already final (no update), and its
    // command was read with one permission check for the burst and conditional reads.
    const created = log.filter((r) => isContentCreating(r.method, r.path));
    const checkRunCreates = created.filter((r) => r.path === `/repos/${repo}/check-runs`).length;
    expect(checkRunCreates).toBe(90);
    expect(created.length).toBeLessThanOrEqual(90 * 2 + 10);
    expect(log.filter((r) => r.path.includes("/collaborators/ann/permission")).length).toBeLessThanOrEqual(5);
  });
});

describe("a hold GitHub asks for", { timeout: 120_000 }, () => {
  let app: AppHarness;

  beforeAll(async () => {
    const gh = await startGitHub({ files: { "README.md": "# widgets\n", ".github/flows/count.yml": COUNT } });
    gh.sim.setPermission(repo, "ann", "write");
    // GitHub allows less than the budget believes (as a GitHub Enterprise Server set lower
    // might): the app runs into secondary limits, and must then hold every request. One request
    // in flight at a time, so that no request can be on its way when a hold begins.
    gh.sim.enforceLimits({ contentCreating: [{ limit: 3, windowMs: 1_000 }], retryAfterSeconds: 1 });
    app = await startApp({ gh, env: { SLUICE_GITHUB_WRITES: "20/1s", SLUICE_GITHUB_IN_FLIGHT: "1" } });
  });
  afterAll(async () => {
    if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
    await app?.stop();
    await app?.gh.sim.stop();
  });

  it("stops every request until it passes, then sends what was refused: every check run and reply arrives", async () => {
    const { sim } = app.gh;
    const issues = Array.from({ length: 12 }, (_, i) => sim.createIssue(repo, { title: `held ${i}`, user: "ann" }).number);
    const bodies = issues.map((_, i) => (i % 4 === 3 ? "/run no-such-flow" : "/run count"));
    await burst(app, issues, bodies);
    const runs = await waitFor(
      "every run to finish",
      async () => {
        const all = await app.sluice.store.listRuns({ repo, flow: "count" });
        return all.length === 9 && all.every((r) => isTerminal(r.status)) ? all : undefined;
      },
      60_000,
    );
    await waitFor("every check run to be final", () => runs.every((r) => sim.checkRunsOf(repo).some((c) => c.externalId === r.id && c.status === "completed")), 60_000);
    await waitFor("every explaining reply", () => issues.filter((_, i) => i % 4 === 3).every((n) => app.replies(repo, n).some((b) => b.includes("no-such-flow"))), 60_000);
    for (const r of runs) expect(sim.checkRunsOf(repo).filter((c) => c.externalId === r.id)).toHaveLength(1);
    // GitHub refused the app at least once (it believes it may do more than it may)...
    expect(sim.limits.events.filter((e) => e.kind === "content").length).toBeGreaterThan(0);
    // ...and the app made no request at all while a hold lasted.
    expect(sim.limits.events.filter((e) => e.kind === "during-hold")).toEqual([]);
    expect(app.logs.some((l) => l.includes("GitHub asked to hold requests"))).toBe(true);
  });
});
