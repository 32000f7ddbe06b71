/**
 * End to end through the simulator, attacks on where and how often a GitHub decision counts:
 * a decision or a run-control command made in an issue or pull request the run does not belong
 * to, a review at a head the gate does not bind, the same signed comment or review delivered
 * again under a fresh delivery id, and a planted notify marker. Each is performed for real and
 * checked at the run's journal and at the simulator.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { cancelRun } from "../../src/app/signals.js";
import type { JournalEvent } from "../../src/core/engine/events.js";
import { startApp, type AppHarness } from "./harness.js";

const SHIP = `name: ship
on:
  manual:
steps:
  - id: review
    wait:
      approval:
        title: Ship it?
        approvers: { permission: write, min: 2 }
  - id: done
    function:
      code: return "shipped";
`;

// The gate names a pull request: a review there counts, at the head it bound when it opened.
const LAND = `name: land
on:
  manual:
    inputs:
      pr: { type: number, required: true }
steps:
  - id: review
    wait:
      approval:
        title: Land it?
        pull_request: \${{ inputs.pr }}
  - id: done
    function:
      code: return "landed";
`;

const ANNOUNCE = `name: announce
on:
  manual:
steps:
  - id: review
    wait:
      approval:
        title: Announce it?
  - id: tell
    notify:
      github_comment: { body: "shipped to production" }
`;

const BOT = "sluice[bot]";
let app: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  app = await startApp({
    files: { "README.md": "# widgets\n", ".github/flows/ship.yml": SHIP, ".github/flows/land.yml": LAND, ".github/flows/announce.yml": ANNOUNCE },
  });
  for (const login of ["ann", "bob", "carol", "dave"]) app.gh.sim.setPermission(repo, login, "write");
  app.gh.sim.setPermission(repo, "mallory", "read");
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
  await app?.stop();
});
afterEach(async () => {
  expect(app.gh.sim.violations).toEqual([]);
  // Each test starts with no active run in the repository, so "the only waiting run" exists.
  for (const r of await app.sluice.store.listRuns({ repo, status: ["queued", "running", "waiting"] })) {
    await cancelRun(app.sluice.runtime, r.id, "test", "test cleanup").catch(() => undefined);
  }
});

function botReplies(issue: number) {
  return app.gh.sim.commentsOf(repo, issue).filter((c) => c.user === BOT);
}

const command = (issue: number, sender: string, body: string) => app.command(repo, issue, sender, body);

/** Sends a delivery and waits until the inbox has processed it. */
async function deliver(event: string, payload: unknown, deliveryId: string) {
  const res = await app.send(event, payload, { deliveryId });
  expect(res.status).toBe(200);
  await app.waitFor(`delivery ${deliveryId} to be processed`, () => app.logs.some((l) => l.includes("delivery processed") && l.includes(deliveryId)));
}

const waitingRun = (issue: number) => app.waitingRun(repo, issue);

async function journal(id: string): Promise<JournalEvent[]> {
  return (await app.sluice.runtime.load(id)).events;
}

async function decisions(id: string) {
  const events = await journal(id);
  return {
    received: events.filter((e): e is Extract<JournalEvent, { type: "approval_received" }> => e.type === "approval_received"),
    refused: events.filter((e): e is Extract<JournalEvent, { type: "approval_refused" }> => e.type === "approval_refused"),
  };
}

async function status(id: string) {
  return (await app.sluice.store.getRun(id))?.status;
}

describe("a decision counts only where its run belongs", { timeout: 120_000 }, () => {
  it("a bare /approve in another issue does not count for the repository's only waiting run", async () => {
    const { sim } = app.gh;
    const home = sim.createIssue(repo, { title: "Ship from here", user: "ann" });
    const elsewhere = sim.createIssue(repo, { title: "Unrelated", user: "mallory" });
    await command(home.number, "ann", "/run ship");
    const id = await waitingRun(home.number);
    expect(await app.sluice.store.listRuns({ repo, status: ["waiting"] })).toHaveLength(1);

    const bare = await command(elsewhere.number, "carol", "/approve");
    expect(bare.reply).toContain("no run of this issue or pull request is waiting for approval");
    const reject = await command(elsewhere.number, "carol", "/reject no");
    expect(reject.reply).toContain("no run of this issue or pull request is waiting for approval");
    expect((await decisions(id)).received).toEqual([]);
    expect(await status(id)).toBe("waiting");

    // Where the run belongs, the same command counts: a reaction acknowledges it.
    const here = await command(home.number, "carol", "/approve");
    expect(here).toMatchObject({ reply: undefined, reactions: ["+1"] });
    expect((await decisions(id)).received.map((e) => e.login)).toEqual(["carol"]);
  });

  it("an /approve naming a run of another issue is refused, journaled and answered", async () => {
    const { sim } = app.gh;
    const home = sim.createIssue(repo, { title: "Ship, named elsewhere", user: "ann" });
    const elsewhere = sim.createIssue(repo, { title: "Somewhere else", user: "mallory" });
    await command(home.number, "ann", "/run ship");
    const id = await waitingRun(home.number);

    const named = await command(elsewhere.number, "carol", `/approve ${id}`);
    expect(named.reply).toContain(`the approval of run \`${id}\` did not count`);
    const { received, refused } = await decisions(id);
    expect(received).toEqual([]);
    expect(refused).toMatchObject([{ login: "carol", via: "comment", decision: "approve", reason: "wrong_place" }]);
    expect(await status(id)).toBe("waiting");
  });

  it("/cancel and /retry act only on the runs of their issue: bare or named, a run of elsewhere is left alone", async () => {
    const { sim } = app.gh;
    const home = sim.createIssue(repo, { title: "Control from here", user: "ann" });
    const elsewhere = sim.createIssue(repo, { title: "Control from elsewhere", user: "mallory" });
    await command(home.number, "ann", "/run ship");
    const id = await waitingRun(home.number);
    expect(await app.sluice.store.listRuns({ repo, status: ["queued", "running", "waiting"] })).toHaveLength(1);

    const bare = await command(elsewhere.number, "bob", "/cancel");
    expect(bare.reply).toContain("no run of this issue to cancel");
    const named = await command(elsewhere.number, "bob", `/cancel ${id}`);
    expect(named.reply).toContain(`run \`${id}\` does not belong to this issue (it was started from #${home.number})`);
    expect(await status(id)).toBe("waiting");
    expect((await journal(id)).some((e) => e.type === "run_cancel_requested")).toBe(false);

    await command(home.number, "bob", "/cancel");
    await app.waitFor("the run to be cancelled", async () => ((await status(id)) === "cancelled" ? true : undefined));
    const bareRetry = await command(elsewhere.number, "bob", "/retry");
    expect(bareRetry.reply).toContain("no run of this issue to retry");
    const namedRetry = await command(elsewhere.number, "bob", `/retry ${id}`);
    expect(namedRetry.reply).toContain("does not belong to this issue");
    expect(await status(id)).toBe("cancelled");
    expect((await journal(id)).some((e) => e.type === "run_retry_requested")).toBe(false);
  });

  it("a review on a pull request the run does not belong to decides nothing", async () => {
    const { sim } = app.gh;
    const home = sim.createIssue(repo, { title: "Ship, reviewed elsewhere", user: "ann" });
    await command(home.number, "ann", "/run ship");
    const id = await waitingRun(home.number);
    sim.pushCommit(repo, "unrelated-review", { "unrelated.txt": "u\n" }, { author: "mallory" });
    const unrelated = sim.createPullRequest(repo, { head: "unrelated-review", title: "Unrelated", user: "mallory" });
    const payload = sim.payloads.pullRequestReview({ repo, number: unrelated.number, sender: "bob", state: "approved" });
    await deliver("pull_request_review", payload, "review-unrelated-1");
    expect(await decisions(id)).toEqual({ received: [], refused: [] });
    await app.outboxEmpty();
    expect(botReplies(unrelated.number)).toEqual([]);
    expect(await status(id)).toBe("waiting");
  });

  it("a review on the gate's pull request counts only at the head the gate bound", async () => {
    const { sim } = app.gh;
    const home = sim.createIssue(repo, { title: "Land a pull request", user: "ann" });
    sim.pushCommit(repo, "to-land", { "land.txt": "reviewed\n" }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "to-land", title: "Land", user: "ann" });
    const bound = pr.pull!.headSha;
    await command(home.number, "ann", `/run land pr=${pr.number}`);
    const id = await waitingRun(home.number);
    const gate = (await app.sluice.runtime.load(id)).state.steps.review?.gate?.info;
    expect(gate?.head).toEqual({ pull_request: pr.number, sha: bound });

    // The head moves after the gate opened: a review of the new head is a review of something else.
    sim.pushCommit(repo, "to-land", { "land.txt": "changed after the gate opened\n" }, { author: "mallory" });
    const moved = sim.payloads.pullRequestReview({ repo, number: pr.number, sender: "bob", state: "approved" });
    expect(moved.review.commit_id).not.toBe(bound);
    await app.send("pull_request_review", moved);
    const answer = await app.waitFor("the answer to the review", () => botReplies(pr.number).find((c) => c.body.includes("your review")));
    expect(answer.body).toContain(`the approval of run \`${id}\` did not count`);
    expect(answer.body).toContain(`binds #${pr.number} at ${bound.slice(0, 7)}`);
    const { received, refused } = await decisions(id);
    expect(received).toEqual([]);
    // The review looked at another commit than the one the gate's digest covers.
    expect(refused).toMatchObject([{ login: "bob", via: "review", reason: "stale_digest" }]);
    expect(await status(id)).toBe("waiting");
  });
});

describe("a review where the run belongs", { timeout: 120_000 }, () => {
  it("counts on the pull request the gate names, at the head it bound, for a run started from an issue", async () => {
    const { sim } = app.gh;
    const home = sim.createIssue(repo, { title: "Land another pull request", user: "ann" });
    sim.pushCommit(repo, "to-land-too", { "land-too.txt": "reviewed\n" }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "to-land-too", title: "Land too", user: "ann" });
    await command(home.number, "ann", `/run land pr=${pr.number}`);
    const id = await waitingRun(home.number);
    await app.send("pull_request_review", sim.payloads.pullRequestReview({ repo, number: pr.number, sender: "bob", state: "approved" }));
    await app.waitFor(`run ${id} to succeed`, async () => ((await status(id)) === "succeeded" ? true : undefined));
    expect((await decisions(id)).received).toMatchObject([{ login: "bob", via: "review" }]);
  });
});

describe("a comment or a review is processed once by its own id", { timeout: 120_000 }, () => {
  it("/run delivered again under a new delivery id starts one run and replies once", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Run once", user: "ann" });
    const payload = sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/run ship" });
    await deliver("issue_comment", payload, "run-once-1");
    await deliver("issue_comment", payload, "run-once-2");
    const runs = [];
    for (const r of await app.sluice.store.listRuns({ repo })) if ((await app.sluice.runtime.load(r.id)).state.trigger.issue === issue.number) runs.push(r.id);
    expect(runs).toHaveLength(1);
    await app.outboxEmpty();
    expect(botReplies(issue.number)).toHaveLength(1);
    expect(app.logs.some((l) => l.includes("delivery skipped") && l.includes("run-once-2"))).toBe(true);
  });

  it("a delivery that failed is tried again under its own id and proceeds; another delivery of the comment does not", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Run once, after a failure", user: "ann" });
    const payload = sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/run ship" });
    // GitHub fails once to say where main is (ann's permission is known from earlier commands):
    // the delivery fails and is tried again later.
    sim.failNext({ method: "GET", path: `/repos/${repo}/commits/main`, status: 502, message: "Bad gateway" });
    await app.send("issue_comment", payload, { deliveryId: "failed-once-1" });
    await app.waitFor("the first delivery to fail", () => app.logs.some((l) => l.includes("delivery failed") && l.includes("failed-once-1")));
    await deliver("issue_comment", payload, "failed-once-2");
    expect(app.logs.some((l) => l.includes("delivery skipped") && l.includes("failed-once-2"))).toBe(true);
    // The inbox tries the failed delivery again after its backoff: it holds the claim, so it proceeds.
    await app.waitFor("the failed delivery's next attempt", () => app.logs.some((l) => l.includes("delivery processed") && l.includes("failed-once-1")));
    const id = await waitingRun(issue.number);
    const runs = [];
    for (const r of await app.sluice.store.listRuns({ repo })) if ((await app.sluice.runtime.load(r.id)).state.trigger.issue === issue.number) runs.push(r.id);
    expect(runs).toEqual([id]);
    await app.outboxEmpty();
    expect(botReplies(issue.number)).toHaveLength(1);
  });

  it("/approve and an approving review delivered twice are each counted once", async () => {
    const { sim } = app.gh;
    sim.pushCommit(repo, "approve-once", { "once.txt": "1\n" }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "approve-once", title: "Once", user: "ann" });
    await command(pr.number, "ann", "/run ship");
    const id = await waitingRun(pr.number);
    const repliesBefore = botReplies(pr.number).length;

    const approve = sim.payloads.issueComment({ repo, issue: pr.number, sender: "carol", body: "/approve" });
    await deliver("issue_comment", approve, "approve-once-1");
    await deliver("issue_comment", approve, "approve-once-2");
    expect((await decisions(id)).received.map((e) => [e.login, e.via])).toEqual([["carol", "comment"]]);
    // Acknowledged once, by a reaction: the check run shows the approval.
    const reactions = () => sim.comments.get(Number(approve.comment.id))?.reactions.map((r) => r.content);
    await app.waitFor("the acknowledgement", () => reactions()?.length);
    expect(reactions()).toEqual(["+1"]);
    await app.outboxEmpty();
    expect(botReplies(pr.number)).toHaveLength(repliesBefore);

    const review = sim.payloads.pullRequestReview({ repo, number: pr.number, sender: "dave", state: "approved" });
    await deliver("pull_request_review", review, "review-once-1");
    await deliver("pull_request_review", review, "review-once-2");
    const { received } = await decisions(id);
    expect(received.map((e) => [e.login, e.via])).toEqual([
      ["carol", "comment"],
      ["dave", "review"],
    ]);
    await app.outboxEmpty();
    expect(botReplies(pr.number)).toHaveLength(repliesBefore);
  });
});

describe("notify github_comment trusts only its own marker", { timeout: 120_000 }, () => {
  it("a marker planted by someone else does not stop the app's comment", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Announce", user: "ann" });
    await command(issue.number, "ann", "/run announce");
    const id = await waitingRun(issue.number);
    // Someone who may only comment plants the marker the notify step will look for.
    sim.addComment(repo, issue.number, { user: "mallory", body: `<!-- sluice:notify ${id}:tell -->` });
    await command(issue.number, "carol", "/approve");
    await app.waitFor(`run ${id} to succeed`, async () => ((await status(id)) === "succeeded" ? true : undefined));
    const mine = botReplies(issue.number).filter((c) => c.body.includes(`<!-- sluice:notify ${id}:tell -->`));
    expect(mine.map((c) => c.body)).toEqual([`shipped to production\n\n<!-- sluice:notify ${id}:tell -->`]);
    const { state } = await app.sluice.runtime.load(id);
    expect(state.steps.tell?.outputs).toMatchObject({ id: mine[0]?.id });
  });
});
