/**
 * End to end through the simulator: a pull request that changes flows gets its validate check
 * with annotations and one sticky comment, updated on the next push; the merge makes a
 * release; `/run` starts a run whose check run completes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { STICKY_MARKER } from "../../src/adapters/github/drafts.js";
import { getLiveRelease } from "../../src/adapters/github/snapshot.js";
import { startApp, type AppHarness } from "./harness.js";

const HELLO = `name: hello
on:
  manual:
    inputs:
      name: { type: string, default: world }
steps:
  - id: greet
    function:
      input: { name: "\${{ inputs.name }}" }
      code: return "hello " + input.name;
outputs:
  greeting: \${{ steps.greet.outputs.result }}
`;

const BROKEN = `name: broken
on:
  manual:
steps:
  - id: a
    sleep: soon
  - id: a
    sleep: 1s
  - id: c
    http:
      url: https://example.com
      connection: nowhere
`;

const DEPLOY = `name: deploy
on:
  manual:
steps:
  - id: build
    function:
      code: return 42;
  - id: announce
    http:
      method: POST
      url: https://example.com/deploy
`;

let app: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  app = await startApp({ files: { "README.md": "# widgets\n", ".github/flows/hello.yml": HELLO } });
  app.gh.sim.setPermission(repo, "ann", "write");
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app.logs.join(""));
  await app?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

describe("drafts and releases", { timeout: 60_000 }, () => {
  let prNumber: number;

  it("gives a pull request that touches flows a validate check with one annotation per diagnostic, and a sticky comment", async () => {
    const { sim } = app.gh;
    sim.pushCommit(repo, "feature", { ".github/flows/broken.yml": BROKEN, ".github/flows/hello.yml": HELLO.replace("world", "there") }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "feature", title: "More flows", user: "ann" });
    prNumber = pr.number;
    const res = await app.send("pull_request", sim.payloads.pullRequest({ repo, number: pr.number, action: "opened" }));
    expect(res.status).toBe(200);
    const head = sim.pull(repo, pr.number).pull.headSha;
    const check = await app.waitFor("the validate check", () => sim.checkRunsOf(repo, head).find((c) => c.name === "sluice / validate"));
    expect(check.status).toBe("completed");
    expect(check.conclusion).toBe("failure");
    const onBroken = check.annotations.filter((a) => a.path === ".github/flows/broken.yml");
    expect(onBroken.length).toBeGreaterThanOrEqual(3);
    expect(onBroken.every((a) => a.annotation_level === "failure" && a.start_line > 1)).toBe(true);
    expect(onBroken.map((a) => a.start_line)).toContain(6); // sleep: soon
    const comments = await app.waitFor("the sticky comment", () => {
      const c = sim.commentsOf(repo, pr.number).filter((x) => x.body.includes(STICKY_MARKER));
      return c.length ? c : undefined;
    });
    expect(comments).toHaveLength(1);
    expect(comments[0]?.user).toBe("sluice[bot]");
    expect(comments[0]?.body).toContain("`broken`");
    expect(comments[0]?.body).toMatch(/hello.*changed/);
  });

  it("updates the same sticky comment on the next push, with the risk diff", async () => {
    const { sim } = app.gh;
    const { before } = sim.pushCommit(repo, "feature", { ".github/flows/broken.yml": null, ".github/flows/deploy.yml": DEPLOY }, { author: "ann" });
    const res = await app.send("pull_request", sim.payloads.pullRequest({ repo, number: prNumber, action: "synchronize", before }));
    expect(res.status).toBe(200);
    const head = sim.pull(repo, prNumber).pull.headSha;
    const check = await app.waitFor("the second validate check", () => sim.checkRunsOf(repo, head).find((c) => c.name === "sluice / validate"));
    expect(check.conclusion).toBe("success");
    expect(check.annotations).toEqual([]);
    const comments = await app.waitFor("the updated comment", () => {
      const c = sim.commentsOf(repo, prNumber).filter((x) => x.body.includes(STICKY_MARKER));
      return c.length === 1 && c[0]?.body.includes("deploy") ? c : undefined;
    });
    expect(comments[0]?.body).toContain("new write step `announce` (http)");
    expect(comments[0]?.body).not.toContain("`broken`");
  });

  it("makes the merge commit the live release, with a release check run", async () => {
    const { sim } = app.gh;
    const before = sim.branchSha(repo, "main") as string;
    const { sha } = sim.mergePullRequest(repo, prNumber, { user: "ann" });
    const res = await app.send("push", sim.payloads.push({ repo, branch: "main", before, sender: "ann" }));
    expect(res.status).toBe(200);
    const check = await app.waitFor("the release check", () => sim.checkRunsOf(repo, sha).find((c) => c.name === "sluice / release"));
    expect(check.conclusion).toBe("success");
    expect(check.output.title).toContain("1 added, 1 changed, 0 removed");
    expect(check.output.summary).toContain("`deploy`");
    expect(check.output.summary).toContain("new write step `announce`");
    const live = await app.waitFor("the live release", () => getLiveRelease(app.sluice.store, repo, Date.now()));
    expect(live).toMatchObject({ sha, ref: "main" });
  });

  it("starts a run with /run in an issue; its check run completes; the app replies with the run's link, its one acknowledgement", async () => {
    const { sim } = app.gh;
    const issue = sim.createIssue(repo, { title: "Say hello", user: "ann" });
    const payload = sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: "/run hello name=sluice" });
    const res = await app.send("issue_comment", payload);
    expect(res.status).toBe(200);
    const live = (await getLiveRelease(app.sluice.store, repo, Date.now()))!;
    const check = await app.waitFor("the run's check run to complete", () =>
      sim.checkRunsOf(repo, live.sha).find((c) => c.name === "sluice: hello" && c.status === "completed"),
    );
    expect(check.conclusion).toBe("success");
    const runs = await app.sluice.store.listRuns({ repo });
    const run = runs.find((r) => r.id === check.externalId);
    expect(run).toMatchObject({ flow: "hello", status: "succeeded", release: { sha: live.sha, kind: "live" } });
    const { state } = await app.sluice.runtime.load(check.externalId);
    expect(state.completed?.outputs).toEqual({ greeting: "hello sluice" });
    expect(state.trigger).toMatchObject({ type: "command", actor: "ann", issue: issue.number });
    // An issue has no commit to show the check run: the reply links the run, and no reaction is spent.
    const replies = await app.waitFor("the reply", () => (app.replies(repo, issue.number).length ? app.replies(repo, issue.number) : undefined));
    expect(replies).toHaveLength(1);
    expect(replies[0]).toContain(`started run [\`${check.externalId}\`]`);
    expect(sim.comments.get(Number(payload.comment.id))!.reactions).toEqual([]);
  });

  it("sends more than 50 annotations in batches of 50", async () => {
    const { sim } = app.gh;
    const steps = Array.from({ length: 60 }, (_, i) => `  - id: s${i}\n    sleep: soon\n`).join("");
    sim.pushCommit(repo, "many", { ".github/flows/many.yml": `name: many\non:\n  manual:\nsteps:\n${steps}` }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "many", title: "Many errors", user: "ann" });
    const before = sim.requests.length;
    await app.send("pull_request", sim.payloads.pullRequest({ repo, number: pr.number, action: "opened" }));
    const head = pr.pull!.headSha;
    const check = await app.waitFor("all the annotations", () => {
      const c = sim.checkRunsOf(repo, head).find((x) => x.name === "sluice / validate");
      return c && c.annotations.length >= 60 ? c : undefined;
    });
    expect(check.annotations.filter((a) => a.path === ".github/flows/many.yml").map((a) => a.start_line)).toEqual(Array.from({ length: 60 }, (_, i) => 6 + 2 * i));
    const writes = sim.requests.slice(before).filter((r) => r.path.includes("/check-runs") && (r.method === "POST" || r.method === "PATCH") && r.path.startsWith(`/repos/${repo}/check-runs`));
    const sizes = writes.filter((r) => (r.body as { output?: { annotations?: unknown[] } })?.output?.annotations).map((r) => (r.body as { output: { annotations: unknown[] } }).output.annotations.length);
    expect(sizes).toEqual([50, 10]);
    expect(check.conclusion).toBe("failure");
  });

  it("runs a draft at the pull request's head with /run in the pull request", async () => {
    const { sim } = app.gh;
    sim.pushCommit(repo, "more", { ".github/flows/hello.yml": HELLO.replace("hello ", "hi ") }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "more", title: "Say hi", user: "ann" });
    const head = pr.pull!.headSha;
    await app.send("issue_comment", sim.payloads.issueComment({ repo, issue: pr.number, sender: "ann", body: "/run hello" }));
    const check = await app.waitFor("the draft run's check run", () =>
      sim.checkRunsOf(repo, head).find((c) => c.name === "sluice: hello (draft)" && c.status === "completed"),
    );
    const { state } = await app.sluice.runtime.load(check.externalId);
    expect(state.release).toMatchObject({ sha: head, ref: "more", kind: "draft" });
    expect(state.completed?.outputs).toEqual({ greeting: "hi world" });
  });
});
