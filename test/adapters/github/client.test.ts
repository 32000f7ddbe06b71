/**
 * The budgeted GitHub client (client.ts) and the installations' Octokit (installations.ts),
 * against the GitHub simulator with its limits enforced: a conditional GET answered 304 from the
 * last answer, a request refused by a secondary limit sent again after the hold and nothing at
 * all sent during it, Probot's throttling and retries off (the budget does their work), and the
 * `github` and `notify` steps obeying a hold through the API they are handed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createProbot } from "probot";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createBudget, type GitHubBudget } from "../../../src/adapters/github/budget.js";
import { budgetedClient } from "../../../src/adapters/github/client.js";
import { Installations } from "../../../src/adapters/github/installations.js";
import { createMetrics } from "../../../src/adapters/server/metrics.js";
import { githubExecutor } from "../../../src/adapters/steps/github.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import type { RunStore } from "../../../src/ports/run-store.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";
import { makeStepContext } from "../../support/step-context.js";

const repo = "acme/widgets";
const dir = mkdtempSync(join(tmpdir(), "sluice-client-"));
let gh: GitHubFixture;
let store: RunStore;
const budgets: GitHubBudget[] = [];

beforeAll(async () => {
  gh = await startGitHub({ files: { "README.md": "# widgets\n" } });
  store = openSqliteRunStore(join(dir, "sluice.db"));
});
afterAll(async () => {
  for (const b of budgets) b.close();
  await store.close();
  await gh.sim.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  gh.sim.enforceLimits(undefined);
  gh.sim.latencyMs = 0;
  expect(gh.sim.violations).toEqual([]);
});

let n = 0;
function budget(over: { windows?: { limit: number; ms: number }[]; maxInFlight?: number } = {}): GitHubBudget {
  const b = createBudget({ store, config: { windows: over.windows ?? [{ limit: 80, ms: 60_000 }], maxInFlight: over.maxInFlight ?? 10, ackReserve: 0.25 }, pollMs: 20 });
  budgets.push(b);
  return b;
}

function client(b: GitHubBudget, metrics = createMetrics({ defaultMetrics: false })) {
  return budgetedClient({ octokit: gh.octokit(), budget: b, installation: `client-test-${++n}`, metrics, identity: async () => ({ login: gh.app.bot.login }) });
}

describe("the budgeted client", () => {
  it("sends a GET with the last answer's ETag and answers a 304 from that answer", async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const api = client(budget(), metrics);
    const before = gh.sim.notModified;
    const first = await api.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" });
    const second = await api.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" });
    expect(second.data).toEqual(first.data);
    expect(gh.sim.notModified - before).toBe(1);
    expect((await metrics.registry.getSingleMetric("sluice_github_requests_total")!.get()).values).toEqual(
      expect.arrayContaining([expect.objectContaining({ labels: { kind: "read", outcome: "not_modified" }, value: 1 })]),
    );
  });

  it("sends nothing during a hold GitHub asked for, then sends the refused request again", async () => {
    // GitHub allows 2 comments a second here; the budget believes 10: the third is refused with a hold.
    gh.sim.enforceLimits({ contentCreating: [{ limit: 2, windowMs: 1_000 }], retryAfterSeconds: 1 });
    const api = client(budget({ windows: [{ limit: 10, ms: 1_000 }], maxInFlight: 1 }));
    const issue = gh.sim.createIssue(repo, { title: "hold", user: "ann" });
    const events = gh.sim.limits.events.length;
    for (const i of [1, 2, 3, 4]) {
      await api.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { owner: "acme", repo: "widgets", issue_number: issue.number, body: `comment ${i}` });
    }
    expect(gh.sim.commentsOf(repo, issue.number).map((c) => c.body)).toEqual(["comment 1", "comment 2", "comment 3", "comment 4"]);
    const breaches = gh.sim.limits.events.slice(events);
    expect(breaches.map((e) => e.kind)).toEqual(["content"]);
  });
});

describe("the installations' API", () => {
  it("is Probot's Octokit without Probot's throttle (writes overlap) or retries (a 500 is sent once)", async () => {
    const probot = createProbot({ env: gh.env });
    const installations = new Installations(probot, { budget: budget() });
    const api = await installations.client(repo);
    const issue = gh.sim.createIssue(repo, { title: "no throttle", user: "ann" });
    gh.sim.latencyMs = 150;
    const seen = gh.sim.limits.maxInFlightSeen.get(`installation:${gh.installation.id}`) ?? 0;
    gh.sim.limits.maxInFlightSeen.set(`installation:${gh.installation.id}`, 0);
    await Promise.all(
      [1, 2, 3].map((i) => api.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { owner: "acme", repo: "widgets", issue_number: issue.number, body: `at once ${i}` })),
    );
    // Probot's throttle sends one write at a time, a second apart.
    expect(gh.sim.limits.maxInFlightSeen.get(`installation:${gh.installation.id}`)).toBe(3);
    gh.sim.limits.maxInFlightSeen.set(`installation:${gh.installation.id}`, Math.max(seen, 3));
    gh.sim.latencyMs = 0;
    const start = gh.sim.requests.length;
    gh.sim.failNext({ method: "GET", path: `/repos/${repo}/issues/${issue.number}`, status: 500 });
    await expect(api.request("GET /repos/{owner}/{repo}/issues/{issue_number}", { owner: "acme", repo: "widgets", issue_number: issue.number })).rejects.toMatchObject({ status: 500 });
    expect(gh.sim.requests.slice(start).filter((r) => r.path === `/repos/${repo}/issues/${issue.number}`)).toHaveLength(1);
  });
});

describe("steps obey the budget", () => {
  it("a github step made during a hold waits for it: GitHub sees nothing before it ends", async () => {
    const b = budget();
    const api = client(b);
    const issue = gh.sim.createIssue(repo, { title: "step in a hold", user: "ann" });
    // Another writer (another process, say) was told to hold.
    const installation = `client-test-${n}`;
    const holdUntil = Date.now() + 600;
    (await b.acquire(installation, { create: false, priority: "gate" })).release({ holdUntil });
    await expect.poll(async () => (await b.view(installation)).hold).toBe(holdUntil);
    const start = gh.sim.requests.length;
    const ctx = makeStepContext({ repo, github: api, issue: issue.number });
    const res = await githubExecutor.execute({ comment: { body: "after the hold" } }, ctx);
    const sent = gh.sim.requests.slice(start).filter((r) => r.method === "POST");
    expect(sent).toHaveLength(1);
    expect(sent[0]!.at).toBeGreaterThanOrEqual(holdUntil);
    expect(res.outputs).toMatchObject({ issue: issue.number });
  });
});
