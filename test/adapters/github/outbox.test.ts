/**
 * The GitHub outbox (src/adapters/github/outbox.ts) against the simulator and a real SQLite
 * store: writes of one lane in order, more important writes first, each write sent once by one
 * of two processes, a reply or a check run retried after its process died half-way not written
 * twice, acknowledgements dropped when stale, a write GitHub refuses for good dropped, and one
 * that fails for now tried again.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createBudget, type GitHubBudget } from "../../../src/adapters/github/budget.js";
import { budgetedClient } from "../../../src/adapters/github/client.js";
import { createOutbox, OUTBOX_NAMESPACE, type OutboxOptions } from "../../../src/adapters/github/outbox.js";
import { createMetrics } from "../../../src/adapters/server/metrics.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import type { RunStore } from "../../../src/ports/run-store.js";
import type { GitHubApi } from "../../../src/ports/step-executor.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";

const repo = "acme/widgets";
const dir = mkdtempSync(join(tmpdir(), "sluice-outbox-"));
let gh: GitHubFixture;
let store: RunStore;
let budget: GitHubBudget;
let api: GitHubApi;
const logs: { level: string; msg: string }[] = [];
const logger = {
  debug: () => {},
  info: (msg: string) => logs.push({ level: "info", msg }),
  warn: (msg: string) => logs.push({ level: "warn", msg }),
  error: (msg: string) => logs.push({ level: "error", msg }),
};

beforeAll(async () => {
  gh = await startGitHub({ files: { "README.md": "# widgets\n" } });
  store = openSqliteRunStore(join(dir, "sluice.db"));
  budget = createBudget({ store, pollMs: 20 });
  api = budgetedClient({ octokit: gh.octokit(), budget, installation: "outbox-test", identity: async () => ({ login: gh.app.bot.login }) });
});
afterAll(async () => {
  budget.close();
  await store.close();
  await gh.sim.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  expect(gh.sim.violations).toEqual([]);
  for (const e of await store.kvList(OUTBOX_NAMESPACE, Date.now())) await store.kvDelete(OUTBOX_NAMESPACE, e.key);
});

function outbox(over: Partial<OutboxOptions> = {}) {
  return createOutbox({ store, apiFor: async () => api, logger, owner: `test-${Math.random()}`, metrics: createMetrics({ defaultMetrics: false }), ...over });
}

async function drain(o: ReturnType<typeof outbox>): Promise<void> {
  for (let i = 0; i < 20 && (await o.drainOnce()) > 0; i++);
}

const bodies = (issue: number) =>
  gh.sim
    .commentsOf(repo, issue)
    .filter((c) => c.user === gh.app.bot.login)
    .map((c) => c.body.replace(/\n*<!-- sluice:reply [^>]* -->$/, ""));

describe("the GitHub outbox", () => {
  it("sends the writes of one lane in order, and more important writes first", async () => {
    const o = outbox({ concurrency: 1 });
    const issue = gh.sim.createIssue(repo, { title: "order", user: "ann" }).number;
    const lane = `${repo}#${issue}`;
    await o.enqueue({ kind: "comment", repo, issue, body: "first" }, { priority: "reply", lane });
    await o.enqueue({ kind: "comment", repo, issue, body: "second" }, { priority: "reply", lane });
    const other = gh.sim.createIssue(repo, { title: "other", user: "ann" }).number;
    await o.enqueue({ kind: "comment", repo, issue: other, body: "an acknowledgement" }, { priority: "ack", lane: `${repo}#${other}` });
    await o.enqueue({ kind: "comment", repo, issue: other, body: "a conclusion" }, { priority: "gate" });
    const from = gh.sim.requests.length;
    await drain(o);
    expect(bodies(issue)).toEqual(["first", "second"]);
    const posted = gh.sim.requests.slice(from).filter((r) => r.method === "POST").map((r) => (r.body as { body: string }).body.split("\n")[0]);
    expect(posted).toEqual(["a conclusion", "first", "second", "an acknowledgement"]);
  });

  it("two processes send each write once", async () => {
    const a = outbox();
    const b = outbox();
    const issues = Array.from({ length: 6 }, (_, i) => gh.sim.createIssue(repo, { title: `twice ${i}`, user: "ann" }).number);
    for (const issue of issues) await a.enqueue({ kind: "comment", repo, issue, body: `once in #${issue}` }, { priority: "reply", lane: `${repo}#${issue}` });
    await Promise.all([drain(a), drain(b)]);
    for (const issue of issues) expect(bodies(issue)).toEqual([`once in #${issue}`]);
  });

  it("a reply whose process died after GitHub took it is found, not posted again", async () => {
    const issue = gh.sim.createIssue(repo, { title: "lost answer", user: "ann" }).number;
    // The first process posts, but dies before it hears GitHub's answer.
    const dying: GitHubApi = {
      request: async (route, params) => {
        const res = await api.request(route, params);
        if (route.startsWith("POST")) throw new Error("the process died");
        return res;
      },
      identity: api.identity!,
    };
    let now = Date.now();
    const first = outbox({ apiFor: async () => dying, clock: () => now });
    await first.enqueue({ kind: "comment", repo, issue, body: "said once" }, { priority: "reply", lane: `${repo}#${issue}` });
    await first.drainOnce();
    expect(bodies(issue)).toEqual(["said once"]);
    now += 60_000;
    await drain(outbox({ clock: () => now }));
    expect(bodies(issue)).toEqual(["said once"]);
    expect(await store.kvList(OUTBOX_NAMESPACE, now)).toEqual([]);
  });

  it("a check run's annotations go 50 a request, and a retry goes on from the batch that failed", async () => {
    const sha = gh.sim.branchSha(repo, "main")!;
    const annotations = Array.from({ length: 120 }, (_, i) => ({ path: "a.yml", start_line: i + 1, end_line: i + 1, annotation_level: "failure" as const, message: `m${i}`, title: "T" }));
    let now = Date.now();
    const o = outbox({ clock: () => now });
    await o.enqueue({ kind: "check_run", repo, check: { name: "sluice / validate", headSha: sha, conclusion: "failure", title: "t", summary: "s", annotations } }, { priority: "gate" });
    // The second batch fails once.
    gh.sim.failNext({ method: "PATCH", path: "/check-runs/", status: 502, message: "Bad gateway" });
    await o.drainOnce();
    now += 60_000;
    await drain(o);
    const runs = gh.sim.checkRunsOf(repo, sha).filter((c) => c.name === "sluice / validate");
    expect(runs).toHaveLength(1);
    expect(runs[0]!.annotations.map((a) => a.message)).toEqual(annotations.map((a) => a.message));
  });

  it("drops a stale acknowledgement and a write GitHub refuses for good; tries a failing one again later", async () => {
    let now = Date.now();
    const o = outbox({ clock: () => now, ackTtlMs: 60_000 });
    const issue = gh.sim.createIssue(repo, { title: "drops", user: "ann" }).number;
    const comment = gh.sim.addComment(repo, issue, { user: "ann", body: "/run x" });
    await o.enqueue({ kind: "reaction", repo, comment_id: comment.id, content: "+1" }, { priority: "ack", lane: `${repo}#${issue}` });
    await o.enqueue({ kind: "comment", repo, issue: 999_999, body: "to an issue that does not exist" }, { priority: "reply" });
    gh.sim.failNext({ method: "POST", path: `/issues/${issue}/comments`, status: 503, message: "Unavailable" });
    await o.enqueue({ kind: "comment", repo, issue, body: "after an outage" }, { priority: "reply", lane: `${repo}#${issue}b` });
    now += 120_000;
    await o.drainOnce();
    expect(comment.reactions).toEqual([]);
    expect(bodies(issue)).toEqual([]);
    const left = await store.kvList(OUTBOX_NAMESPACE, now);
    expect(left.map((e) => (e.value as { write: { body?: string } }).write.body)).toEqual(["after an outage"]);
    expect(logs.some((l) => l.level === "error" && l.msg.includes("refused a write for good"))).toBe(true);
    now += 10_000;
    await drain(o);
    expect(bodies(issue)).toEqual(["after an outage"]);
  });
});
