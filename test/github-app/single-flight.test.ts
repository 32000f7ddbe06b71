/**
 * A run is advanced by one caller at a time (SPEC §4, the trust issue's first attack): a gate
 * approved from GitHub — by /approve, by a review, by the check run's button — is followed by a
 * write to a peer that takes 3 s to answer. Every caller that wakes the run while the write is
 * in flight (the decision, the kick after it, the worker's poll) must leave it to the advance in
 * flight: the peer sees exactly one request, and no unknown-outcome gate ever opens.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { sendJson, startHttpPeer, type HttpPeer } from "../support/http-peer.js";
import { startApp, type AppHarness } from "./harness.js";

const DEPLOY = `name: deploy
on:
  manual:
    inputs:
      via: { type: string, required: true }
steps:
  - id: review
    wait:
      approval:
        title: Deploy?
  - id: push
    http:
      method: POST
      connection: slow
      url: /deploy
      body: { via: "\${{ inputs.via }}" }
`;

let app: AppHarness;
let peer: HttpPeer;
const repo = "acme/widgets";

beforeAll(async () => {
  peer = await startHttpPeer(async (_req, res) => {
    await new Promise((r) => setTimeout(r, 3_000));
    sendJson(res, 200, { deployed: true });
  });
  app = await startApp({
    files: {
      "README.md": "# widgets\n",
      ".github/sluice.yml": `connections:\n  slow: { type: http, base_url: "${peer.origin}" }\n`,
      ".github/flows/deploy.yml": DEPLOY,
    },
  });
  for (const login of ["ann", "bob", "carol", "dave"]) app.gh.sim.setPermission(repo, login, "write");
});
afterAll(async () => {
  await app?.stop();
  await peer?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

async function comment(issue: number, sender: string, body: string): Promise<void> {
  const res = await app.send("issue_comment", app.gh.sim.payloads.issueComment({ repo, issue, sender, body }));
  expect(res.status).toBe(200);
}

/** The run ended; its journal and what the peer received for it. */
async function outcome(id: string, via: string) {
  const record = await app.ended(id);
  const events = (await app.sluice.store.loadJournal(id)).map((s) => s.event);
  return {
    status: record.status,
    requests: peer.requests.filter((r) => r.json().via === via).length,
    started: events.filter((e) => e.type === "step_started" && e.step === "push").length,
    unknownOutcomeGates: events.filter((e) => e.type === "gate_opened" && e.gate.kind === "unknown_outcome").length,
  };
}

const once = { status: "succeeded", requests: 1, started: 1, unknownOutcomeGates: 0 };

describe("one advance per run at a time", { timeout: 120_000 }, () => {
  it("a gate approved by /approve, by a review and by the check run's button: the slow write runs once each time", async () => {
    const { sim } = app.gh;
    const byComment = async () => {
      const issue = sim.createIssue(repo, { title: "Deploy by comment", user: "ann" });
      await comment(issue.number, "ann", "/run deploy via=comment");
      const id = await app.waitingRun(repo, issue.number);
      await comment(issue.number, "bob", "/approve");
      return outcome(id, "comment");
    };
    const byReview = async () => {
      sim.pushCommit(repo, "deploy-review", { "README.md": "# widgets, reviewed\n" }, { author: "ann" });
      const pr = sim.createPullRequest(repo, { head: "deploy-review", title: "Deploy by review", user: "ann" });
      await comment(pr.number, "ann", "/run deploy via=review");
      const id = await app.waitingRun(repo, pr.number);
      expect((await app.send("pull_request_review", sim.payloads.pullRequestReview({ repo, number: pr.number, sender: "carol", state: "approved" }))).status).toBe(200);
      return outcome(id, "review");
    };
    const byButton = async () => {
      const issue = sim.createIssue(repo, { title: "Deploy by button", user: "ann" });
      await comment(issue.number, "ann", "/run deploy via=button");
      const id = await app.waitingRun(repo, issue.number);
      const check = await app.waitFor("the Approve button", () => [...sim.checkRuns.values()].find((c) => c.externalId === id && c.actions.some((a) => a.identifier.startsWith("approve:"))));
      const approve = check.actions.find((a) => a.identifier.startsWith("approve:"))!;
      expect((await app.send("check_run", sim.payloads.checkRunRequestedAction({ repo, checkRunId: check.id, identifier: approve.identifier, sender: "dave" }))).status).toBe(200);
      return outcome(id, "button");
    };
    const [c, r, b] = await Promise.all([byComment(), byReview(), byButton()]);
    expect({ comment: c, review: r, button: b }).toEqual({ comment: once, review: once, button: once });
  });
});
