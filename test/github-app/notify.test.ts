/**
 * Gates that reach people, end to end through the GitHub simulator and a Slack-shaped webhook
 * peer on loopback: a gate that opens is announced in the run's issue, mentioning its approvers
 * (users and teams), with the evidence folded and the ways to decide; its escalation is announced
 * to the escalated approvers and the check run names them; the policy's webhook gets every
 * announcement without its secret; an announcement is made once, across a restart and across a
 * process that died after sending the comment but before noting it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { NOTICES_NAMESPACE } from "../../src/adapters/github/gate-notices.js";
import { metrics } from "../../src/adapters/server/metrics.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import { startHttpPeer, type HttpPeer } from "../support/http-peer.js";
import { startApp, unmarked, type AppHarness } from "./harness.js";

const DIFF = ["diff --git a/app.ts b/app.ts", "--- a/app.ts", "+++ b/app.ts", "@@ -1,20 +1,20 @@", ...Array.from({ length: 30 }, (_, i) => `-old ${i} @mallory\n+new ${i}`)].join("\n");

const SHIP = `name: ship
on:
  manual:
steps:
  - id: prep
    function:
      code: return 1;
  - id: review
    wait:
      approval:
        title: Ship the fix?
        summary: "A fix for @mallory's bug"
        evidence: ["\${{ inputs.diff }}"]
        approvers: { users: [carol], teams: [acme/platform], min: 1 }
        timeout: 8h
        escalate: [{ after: 2s, approvers: { users: [oncall-lead] } }]
  - id: done
    function:
      code: return "shipped";
`;

const CONFIG = `connections:
  slack: { type: webhook, secret: SLACK_URL }
policy:
  notify: { connection: slack }
`;

const repo = "acme/widgets";
const WEBHOOK_PATH = "/services/T000/B000/s3cr3t-hook-path";
let gh: GitHubFixture;
let peer: HttpPeer;
let app: AppHarness;
let home: string;

const notices = (issue: number) => gh.sim.commentsOf(repo, issue).filter((c) => c.user === "sluice[bot]" && c.body.includes("Approval needed"));

beforeAll(async () => {
  peer = await startHttpPeer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  });
  gh = await startGitHub({ files: { "README.md": "# widgets\n", ".github/sluice.yml": CONFIG, ".github/flows/ship.yml": SHIP.replace("${{ inputs.diff }}", "${{ github.event.comment.body }}") } });
  for (const login of ["ann", "carol", "oncall-lead"]) gh.sim.setPermission(repo, login, "write");
  app = await startApp({ gh, env: { SLUICE_SECRET_SLACK_URL: `${peer.origin}${WEBHOOK_PATH}` } });
  home = app.sluice.config.home;
});
afterAll(async () => {
  if (process.env.SLUICE_TEST_LOGS) console.log(app?.logs.join(""));
  await app?.stop();
  await gh?.sim.stop();
  await peer?.stop();
});
afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
});

describe("gates that reach people", { timeout: 90_000 }, () => {
  it("announces an opened gate, then its escalation, in the issue and to the webhook, once each", async () => {
    const { sim } = gh;
    const issue = sim.createIssue(repo, { title: "Ship the fix", user: "ann" });
    // The comment's body is the gate's evidence: a long diff that mentions someone.
    await app.send("issue_comment", sim.payloads.issueComment({ repo, issue: issue.number, sender: "ann", body: `/run ship\n${DIFF}` }));
    const id = await app.waitingRun(repo, issue.number);
    const { state } = await app.sluice.runtime.load(id);
    const digest12 = state.steps.review!.gate!.info.digest.slice(0, 12);

    const opened = unmarked((await app.waitFor("the gate's announcement", () => notices(issue.number)[0])).body);
    expect(opened).toContain("@carol @acme/platform: run");
    expect(opened).toContain(`/approve ${id} ${digest12}`);
    expect(opened).toContain("press **Approve** or **Reject** on the check run `sluice: ship`");
    expect(opened).toContain(`${app.server.url}/runs/${id}?exp=`);
    // The evidence is folded, shown as a diff, and mentions nobody (it is inside a code block).
    expect(opened).toMatch(/<details><summary>Evidence 1 \(\d+ lines\)<\/summary>\n\n```diff\n/);
    expect(opened).toContain("+new 29");
    expect(opened.replace(/```diff\n[\s\S]*?\n```/, "")).not.toContain("@mallory");
    expect(opened).toContain("A fix for @\u200bmallory");

    const escalated = unmarked((await app.waitFor("the escalation's announcement", () => notices(issue.number).find((c) => c.body.includes("escalated, level 1")))).body);
    expect(escalated).toContain("@carol @oncall-lead @acme/platform: run");
    // The check run names the escalated approvers.
    await app.waitFor("the check run to name the escalated approvers", () =>
      [...sim.checkRuns.values()].find((c) => c.externalId === id && c.output.summary?.includes("`oncall-lead`") && c.output.summary.includes("(escalated, level 1)")),
    );

    // The webhook peer got both, Slack-shaped, without the webhook's secret URL.
    await app.waitFor("two webhook posts", () => peer.requests.length >= 2);
    const posts = peer.requests.map((r) => ({ path: r.path, text: r.json().text as string, key: r.headers["idempotency-key"] }));
    expect(posts.map((p) => p.path)).toEqual([WEBHOOK_PATH, WEBHOOK_PATH]);
    expect(posts[0]!.text).toContain("Approval needed: Ship the fix?");
    expect(posts[0]!.text).toContain(`Run ${id} of ship in ${repo}`);
    expect(posts[1]!.text).toContain("escalated, level 1");
    for (const p of posts) expect(p.text).not.toContain("s3cr3t");
    expect(app.logs.join("")).not.toContain("s3cr3t");

    // Looking again announces nothing more.
    expect(await app.sluice.notices.scanOnce()).toBe(0);
    await app.outboxEmpty();
    expect(notices(issue.number)).toHaveLength(2);

    // A process that died after its comment was sent, before noting it: the next one finds the
    // comment by its marker and does not post it again (the webhook, which has no marker, is
    // posted again with the same Idempotency-Key).
    const records = await app.sluice.store.kvList(NOTICES_NAMESPACE, Date.now(), `${id}:`);
    const level1 = records.find((r) => r.key.endsWith(":L1"))!;
    const at = (level1.value as { at: number }).at;
    await app.sluice.store.kvSet(NOTICES_NAMESPACE, level1.key, { at, until: 0 }, { now: Date.now(), ifVersion: level1.version });
    expect(await app.sluice.notices.scanOnce()).toBe(1);
    await app.outboxEmpty();
    expect(notices(issue.number)).toHaveLength(2);
    expect(peer.requests).toHaveLength(3);
    expect(peer.requests[2]!.headers["idempotency-key"]).toBe(posts[1]!.key);

    // /metrics: the open gate and its age, the outbox's depth, webhook intake, step durations.
    const scraped = await metrics.registry.metrics();
    expect(scraped).toMatch(/^sluice_gates_open 1$/m);
    expect(Number(/^sluice_gate_oldest_open_seconds (\S+)$/m.exec(scraped)?.[1])).toBeGreaterThan(0);
    expect(scraped).toMatch(/^sluice_github_outbox_depth 0$/m);
    expect(Number(/^sluice_webhook_intake_seconds_count\{outcome="accepted"\} (\d+)$/m.exec(scraped)?.[1])).toBeGreaterThan(0);
    expect(Number(/^sluice_step_duration_seconds_count\{kind="function",outcome="succeeded"\} (\d+)$/m.exec(scraped)?.[1])).toBeGreaterThan(0);

    // Another process on the same store (a restart, or a second server) announces nothing again.
    const second = await startApp({ gh, env: { SLUICE_SECRET_SLACK_URL: `${peer.origin}${WEBHOOK_PATH}`, SLUICE_HOME: home } });
    try {
      expect(await second.sluice.notices.scanOnce()).toBe(0);
      await second.outboxEmpty();
    } finally {
      await second.stop();
    }
    expect(notices(issue.number)).toHaveLength(2);
    expect(peer.requests).toHaveLength(3);

    // The escalated approver decides with the command the announcement gave.
    const res = await app.command(repo, issue.number, "oncall-lead", `/approve ${id} ${digest12}`);
    expect(res.reply).toBeUndefined();
    expect((await app.ended(id)).status).toBe("succeeded");
  });
});
