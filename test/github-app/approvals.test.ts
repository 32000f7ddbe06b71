/**
 * End to end through the simulator: gates approved by a pull-request review, by `/approve` and
 * by the check run's button; an ineligible approval is refused with a reply, and its check run
 * says so too; a decision that counted is acknowledged once, the check run carrying the rest; a
 * redelivered webhook is processed once; a forged or unsigned one is rejected and logged.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startApp, type AppHarness } from "./harness.js";

const SHIP = `name: ship
on:
  manual:
steps:
  - id: review
    wait:
      approval:
        title: Ship it?
        approvers: { permission: write, min: 1 }
  - id: done
    function:
      code: return "shipped";
outputs:
  result: \${{ steps.done.outputs.result }}
`;

let app: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  app = await startApp({ files: { "README.md": "# widgets\n", ".github/flows/ship.yml": SHIP } });
  for (const login of ["ann", "bob", "carol", "dave"]) app.gh.sim.setPermission(repo, login, "write");
  app.gh.sim.setPermission(repo, "rita", "read");
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
  await app?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

const command = (issue: number, sender: string, body: string, deliveryId?: string) => app.command(repo, issue, sender, body, deliveryId ? { deliveryId } : {});
const waitingRun = (issue: number) => app.waitingRun(repo, issue);
const finished = (id: string) => app.ended(id);

describe("approvals from GitHub", { timeout: 90_000 }, () => {
  it("approves a gate with a pull-request review on the pull request the run came from", async () => {
    const { sim } = app.gh;
    sim.pushCommit(repo, "ship-it", { "README.md": "# widgets, shipped\n" }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "ship-it", title: "Ship", user: "ann" });
    // In a pull request the check run on its head answers /run: a reaction acknowledges it.
    const { reply, reactions } = await command(pr.number, "ann", "/run ship");
    expect({ reply, reactions }).toEqual({ reply: undefined, reactions: ["+1"] });
    const id = await waitingRun(pr.number);
    const res = await app.send("pull_request_review", sim.payloads.pullRequestReview({ repo, number: pr.number, sender: "bob", state: "approved" }));
    expect(res.status).toBe(200);
    const run = await finished(id);
    expect(run.status).toBe("succeeded");
    const { state } = await app.sluice.runtime.load(id);
    expect(state.steps.review?.outputs).toMatchObject({ decision: "approved", approvers: [{ login: "bob", via: "review" }] });
    const check = await app.waitFor("the run's check run to complete", () => sim.checkRunsOf(repo, pr.pull!.headSha).find((c) => c.externalId === id && c.status === "completed"));
    expect(check.conclusion).toBe("success");
    expect(check.output.summary).toContain("succeeded");
    // The approval counted: the check run says so, and nothing is written in the pull request.
    await app.outboxEmpty();
    expect(app.replies(repo, pr.number)).toEqual([]);
  });

  it("refuses an ineligible /approve with a reply saying why, then counts an eligible one", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Ship from an issue", user: "ann" });
    await command(issue.number, "ann", "/run ship");
    const id = await waitingRun(issue.number);

    const self = await command(issue.number, "ann", "/approve");
    expect(self.reply).toContain("did not count");
    expect(self.reply).toContain("ann triggered this run and may not approve it");
    expect(self.reactions).toEqual([]);

    const reader = await command(issue.number, "rita", `/approve ${id}`);
    expect(reader.reply).toContain("commands are honoured only from people with write access");
    expect(reader.reactions).toEqual([]);

    const stale = await command(issue.number, "carol", `/approve ${id} 0000000`);
    expect(stale.reply).toContain("does not match the gate's current digest");
    expect((await app.sluice.store.getRun(id))?.status).toBe("waiting");
    // The check run states the refused decisions too.
    const refusedShown = await app.waitFor("the check run to show the refusals", () =>
      [...sim.checkRuns.values()].find((c) => c.externalId === id && c.output.summary?.includes("not counted") && c.output.summary.includes("`stale_digest`")),
    );
    expect(refusedShown.output.summary).toContain("`ann` via comment (`self`)");

    const ok = await command(issue.number, "carol", `/approve ${id}`);
    expect(ok).toMatchObject({ reply: undefined, reactions: ["+1"] });
    expect((await finished(id)).status).toBe("succeeded");
    const { state } = await app.sluice.runtime.load(id);
    expect(state.steps.review?.outputs).toMatchObject({ approvers: [{ login: "carol", via: "comment" }] });
  });

  it("approves a gate with the check run's Approve button", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Ship by button", user: "ann" });
    await command(issue.number, "ann", "/run ship");
    const id = await waitingRun(issue.number);
    const check = await app.waitFor("the check run's buttons", () =>
      sim.checkRuns.size ? [...sim.checkRuns.values()].find((c) => c.externalId === id && c.actions.some((a) => a.identifier.startsWith("approve:"))) : undefined,
    );
    const approve = check.actions.find((a) => a.identifier.startsWith("approve:"))!;
    const res = await app.send("check_run", sim.payloads.checkRunRequestedAction({ repo, checkRunId: check.id, identifier: approve.identifier, sender: "dave" }));
    expect(res.status).toBe(200);
    expect((await finished(id)).status).toBe("succeeded");
    const { state } = await app.sluice.runtime.load(id);
    expect(state.steps.review?.outputs).toMatchObject({ approvers: [{ login: "dave", via: "check_run" }] });
    // The only reply in the issue links the run: the click that counted is shown by the check run.
    await app.outboxEmpty();
    expect(app.replies(repo, issue.number)).toEqual([expect.stringContaining("started run")]);
    await app.waitFor("the check run to complete", () => (sim.checkRuns.get(check.id)?.status === "completed" ? true : undefined));
    expect(sim.checkRuns.get(check.id)?.conclusion).toBe("success");
  });

  it("rejects a gate with a review that requests changes", async () => {
    const { sim } = app.gh;
    sim.pushCommit(repo, "ship-again", { "README.md": "# widgets, again\n" }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "ship-again", title: "Ship again", user: "ann" });
    await command(pr.number, "ann", "/run ship");
    const id = await waitingRun(pr.number);
    await app.send("pull_request_review", sim.payloads.pullRequestReview({ repo, number: pr.number, sender: "bob", state: "changes_requested", body: "not yet" }));
    const run = await finished(id);
    expect(run.status).toBe("failed");
    const { state } = await app.sluice.runtime.load(id);
    expect(state.completed?.error).toMatchObject({ code: "APPROVAL_REJECTED", message: "rejected by bob: not yet" });
  });
});

describe("run control from GitHub", { timeout: 90_000 }, () => {
  it("shows, cancels and retries the runs of an issue with /status, /cancel and /retry", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Control", user: "ann" });
    await command(issue.number, "ann", "/run ship");
    const id = await waitingRun(issue.number);
    const status = await command(issue.number, "bob", "/status");
    expect(status.reply).toContain(`[\`${id}\`]`);
    expect(status.reply).toContain("waiting · gate `review` 0/1");
    const cancel = await command(issue.number, "bob", "/cancel");
    expect(cancel).toMatchObject({ reply: undefined, reactions: ["+1"] });
    expect((await finished(id)).status).toBe("cancelled");
    const retry = await command(issue.number, "bob", "/retry");
    expect(retry).toMatchObject({ reply: undefined, reactions: ["+1"] });
    await app.waitFor("the run to wait again", async () => ((await app.sluice.store.getRun(id))?.status === "waiting" ? true : undefined));
    const unknown = await command(issue.number, "bob", "/cancel 0000000000zzzzz");
    expect(unknown.reply).toContain("there is no run `0000000000zzzzz`");
    await command(issue.number, "bob", `/cancel ${id}`);
    expect((await finished(id)).status).toBe("cancelled");
  });

  it("cancels with the check run's Cancel button and retries with Re-run", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Buttons", user: "ann" });
    await command(issue.number, "ann", "/run ship");
    const id = await waitingRun(issue.number);
    const check = await app.waitFor("the Cancel button", () => [...sim.checkRuns.values()].find((c) => c.externalId === id && c.actions.some((a) => a.identifier === "cancel")));
    await app.send("check_run", sim.payloads.checkRunRequestedAction({ repo, checkRunId: check.id, identifier: "cancel", sender: "rita" }));
    const refused = await app.waitFor("the refusal", () => sim.commentsOf(repo, issue.number).find((c) => c.body.includes("cannot cancel")));
    expect(refused.body).toContain("needs write access");
    expect((await app.sluice.store.getRun(id))?.status).toBe("waiting");
    await app.send("check_run", sim.payloads.checkRunRequestedAction({ repo, checkRunId: check.id, identifier: "cancel", sender: "dave" }));
    expect((await finished(id)).status).toBe("cancelled");
    await app.waitFor("the check run to show it", () => (sim.checkRuns.get(check.id)?.status === "completed" ? true : undefined));
    await app.send("check_run", sim.payloads.checkRun({ repo, checkRunId: check.id, action: "rerequested", sender: "dave" }));
    await app.waitFor("the run to wait again", async () => ((await app.sluice.store.getRun(id))?.status === "waiting" ? true : undefined));
    const { state } = await app.sluice.runtime.load(id);
    expect(state.attempt).toBe(2);
  });
});

describe("webhook intake", { timeout: 60_000 }, () => {
  it("processes a redelivered webhook once", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Redelivery", user: "ann" });
    const deliveryId = "redelivered-1";
    const first = await command(issue.number, "ann", "/run ship", deliveryId);
    expect(first.reply).toContain("started run");
    const again = await app.send("issue_comment", first.payload, { deliveryId });
    expect(again.status).toBe(200);
    const all = await app.sluice.store.listRuns({ repo });
    const fromIssue = [];
    for (const r of all) if ((await app.sluice.runtime.load(r.id)).state.trigger.issue === issue.number) fromIssue.push(r.id);
    expect(fromIssue).toHaveLength(1);
    await app.waitFor("the redelivery to be logged", () => app.logs.some((l) => l.includes("redelivery acknowledged") && l.includes(deliveryId)));
    expect(sim.commentsOf(repo, issue.number).filter((c) => c.user === "sluice[bot]")).toHaveLength(1);
  });

  it("takes deliveries at the server's root too, the webhook URL Probot's setup flow registers", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "At the root", user: "ann" });
    const payload = sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/status" });
    const res = await sim.sendWebhook(`${app.server.url}/`, "issue_comment", payload, { secret: app.gh.webhookSecret, deliveryId: "at-root-1" });
    expect(res.status).toBe(200);
    const reply = await app.waitFor("the reply", () => sim.commentsOf(repo, issue.number).find((c) => c.user === "sluice[bot]"));
    expect(reply.body).toContain("/status");
    const forged = await sim.sendWebhook(`${app.server.url}/`, "issue_comment", payload, { secret: app.gh.webhookSecret, deliveryId: "at-root-2", forge: true });
    expect(forged.status).toBe(400);
  });

  it("rejects and logs a forged signature and a missing one; neither is recorded", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Forged", user: "ann" });
    const payload = sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/run ship" });
    const forged = await app.send("issue_comment", payload, { forge: true, deliveryId: "forged-1" });
    expect(forged.status).toBe(400);
    const unsigned = await fetch(app.hookUrl, {
      method: "POST",
      headers: { "content-type": "application/json", "x-github-event": "issue_comment", "x-github-delivery": "unsigned-1" },
      body: JSON.stringify(payload),
    });
    expect(unsigned.status).toBe(400);
    expect(app.logs.find((l) => l.includes("webhook delivery rejected") && l.includes("forged-1"))).toContain('"signature":"present"');
    expect(app.logs.find((l) => l.includes("webhook delivery rejected") && l.includes("unsigned-1"))).toContain('"signature":"missing"');
    // Neither delivery was recorded: recording them now succeeds.
    expect(await app.sluice.store.recordDelivery({ id: "forged-1", event: "probe", payload: {}, receivedAt: 0 })).toBe(true);
    expect(await app.sluice.store.recordDelivery({ id: "unsigned-1", event: "probe", payload: {}, receivedAt: 0 })).toBe(true);
    expect(sim.commentsOf(repo, issue.number).filter((c) => c.user === "sluice[bot]")).toHaveLength(0);
  });
});

describe("a policy floor that names a team", { timeout: 60_000 }, () => {
  it("counts /approve from a member of the floor's team, and refuses a writer outside it", async () => {
    const floor = await startApp({
      files: { "README.md": "# widgets\n", ".github/sluice.yml": "policy:\n  approvers: { teams: [acme/maintainers], min: 1 }\n", ".github/flows/ship.yml": SHIP },
    });
    try {
      const { sim } = floor.gh;
      for (const login of ["ann", "bob", "carol"]) sim.setPermission(repo, login, "write");
      sim.addTeamMember("acme", "maintainers", "carol");
      const issue = sim.createIssue(repo, { title: "Ship under the floor", user: "ann" });
      await floor.command(repo, issue.number, "ann", "/run ship");
      const id = await floor.waitingRun(repo, issue.number);
      // The gate is announced to the floor's team first (its approvers name nobody).
      await floor.waitFor("the gate's announcement", () => floor.replies(repo, issue.number).find((r) => r.includes("@acme/maintainers")));
      await floor.outboxEmpty();
      const outsider = await floor.command(repo, issue.number, "bob", `/approve ${id}`);
      expect(outsider.reply).toContain("did not count");
      expect((await floor.sluice.store.getRun(id))?.status).toBe("waiting");
      // The floor's team is asked about as the gate's own teams are.
      const member = await floor.command(repo, issue.number, "carol", `/approve ${id}`);
      expect(member).toMatchObject({ reply: undefined, reactions: ["+1"] });
      expect((await floor.ended(id)).status).toBe("succeeded");
      expect(sim.violations).toEqual([]);
    } finally {
      await floor.stop();
    }
  });
});
