import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { notifyExecutor } from "../../../src/adapters/steps/notify.js";
import { NonRetriableError, RetryAfterError } from "../../../src/core/errors.js";
import type { StepContext } from "../../../src/ports/step-executor.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";

/** The hidden marker the default context (run-test, step) leaves in a comment. */
const MARKER = "<!-- sluice:notify run-test:step -->";

let gh: GitHubFixture;

beforeAll(async () => {
  gh = await startGitHub();
});

afterAll(async () => {
  await gh.sim.stop();
});

afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
  expect(gh.sim.responseViolations).toEqual([]);
});

function ctx(overrides: Partial<StepContext> = {}): StepContext {
  return makeStepContext({ repo: "acme/widgets", github: gh.githubApi(), ...overrides });
}


describe("notify executor: github_comment, against the GitHub simulator", () => {
  it("comments on the run's pull request by default, as the app", async () => {
    gh.sim.pushCommit("acme/widgets", "feature", { "f.txt": "f\n" });
    const pr = gh.sim.createPullRequest("acme/widgets", { head: "feature", title: "Feature", user: "alice" });
    const { outputs } = await notifyExecutor.execute({ github_comment: { body: "Run **started**" } }, ctx({ issue: pr.number }));
    const comments = gh.sim.commentsOf("acme/widgets", pr.number);
    expect(comments.map((c) => [c.user, c.body])).toEqual([["sluice[bot]", `Run **started**\n\n${MARKER}`]]);
    expect(outputs).toEqual({ id: comments[0]?.id, url: `${gh.sim.url}/acme/widgets/pull/${pr.number}#issuecomment-${comments[0]?.id}`, issue: pr.number });
    expect(gh.sim.requests.at(-1)).toMatchObject({ method: "POST", operationId: "issues/create-comment", status: 201 });
  });

  it("comments on the issue named (a number given as a string, as expressions yield)", async () => {
    const run = gh.sim.createIssue("acme/widgets", { title: "run's issue" });
    const target = gh.sim.createIssue("acme/widgets", { title: "target" });
    await notifyExecutor.execute({ github_comment: { issue: String(target.number), body: "over here" } }, ctx({ issue: run.number }));
    expect(gh.sim.commentsOf("acme/widgets", target.number).map((c) => c.body)).toEqual([`over here\n\n${MARKER}`]);
    expect(gh.sim.commentsOf("acme/widgets", run.number)).toEqual([]);
  });

  it("a missing issue and a body over GitHub's limit are non-retriable, with GitHub's message", async () => {
    const missing = await failure(notifyExecutor.execute({ github_comment: { issue: 4040, body: "x" } }, ctx()));
    expect(missing).toBeInstanceOf(NonRetriableError);
    expect(missing.details.status).toBe(404);
    const issue = gh.sim.createIssue("acme/widgets", { title: "long" });
    const long = await failure(notifyExecutor.execute({ github_comment: { issue: issue.number, body: "y".repeat(65_537) } }, ctx()));
    expect(long).toBeInstanceOf(NonRetriableError);
    expect(long.message).toContain("Validation Failed");
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toEqual([]);
  });

  it("a rate limit waits as GitHub says; a 5xx is retryable; the retry posts once", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "limits" });
    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 403, headers: { "retry-after": "12" } });
    const limited = await failure(notifyExecutor.execute({ github_comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(limited).toBeInstanceOf(RetryAfterError);
    expect((limited as RetryAfterError).retryAfterMs).toBe(12_000);
    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 500 });
    const down = await failure(notifyExecutor.execute({ github_comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(down).not.toBeInstanceOf(NonRetriableError);
    expect(down).not.toBeInstanceOf(RetryAfterError);
    await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "x" } }, ctx());
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toHaveLength(1);
  });

  // GitHub's docs say to wait at least a minute after a 403 secondary rate limit that names no
  // wait (no retry-after, quota not exhausted).
  it("a secondary rate limit without retry-after still waits", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "secondary" });
    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 403, headers: { "retry-after": null, "x-ratelimit-remaining": null } });
    const err = await failure(notifyExecutor.execute({ github_comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(err).toBeInstanceOf(RetryAfterError);
    expect((err as RetryAfterError).retryAfterMs).toBe(60_000);
  });

  it("posts once per run and step: a later attempt finds the comment instead of posting again", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "once" });
    const first = await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "deployed" } }, ctx({ attempt: 1 }));
    const again = await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "deployed" } }, ctx({ attempt: 2, idempotencyKey: "run-test:step:2" }));
    expect(again.outputs.id).toBe(first.outputs.id);
    const other = await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "deployed" } }, ctx({ stepId: "other" }));
    expect(other.outputs.id).not.toBe(first.outputs.id);
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toHaveLength(2);
  });

  it("trusts the marker only in the app's own comments: a planted marker does not stop the app's comment", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "planted", user: "mallory" });
    // Anyone who can comment can type the marker: the run id is on the run's check run.
    const planted = gh.sim.addComment("acme/widgets", issue.number, { user: "mallory", body: `nothing to see\n\n${MARKER}` });
    const { outputs } = await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "deployed to production" } }, ctx());
    const comments = gh.sim.commentsOf("acme/widgets", issue.number);
    expect(comments.map((c) => [c.user, c.body])).toEqual([
      ["mallory", `nothing to see\n\n${MARKER}`],
      ["sluice[bot]", `deployed to production\n\n${MARKER}`],
    ]);
    expect(outputs.id).toBe(comments[1]?.id);
    expect(outputs.id).not.toBe(planted.id);
    // The app's own comment is still found by a later attempt.
    const again = await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "deployed to production" } }, ctx({ attempt: 2 }));
    expect(again.outputs.id).toBe(comments[1]?.id);
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toHaveLength(2);
  });

  it("without knowing whom it acts as, trusts no marker: it posts rather than stay silent", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "no identity" });
    const api = gh.githubApi();
    const anonymous = { request: api.request };
    await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "hello" } }, ctx({ github: anonymous }));
    await notifyExecutor.execute({ github_comment: { issue: issue.number, body: "hello" } }, ctx({ github: anonymous, attempt: 2 }));
    expect(gh.sim.commentsOf("acme/widgets", issue.number).map((c) => c.user)).toEqual(["sluice[bot]", "sluice[bot]"]);
  });

  it("aborts before posting", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "abort" });
    const controller = new AbortController();
    controller.abort();
    const err = await failure(notifyExecutor.execute({ github_comment: { issue: issue.number, body: "x" } }, ctx({ signal: controller.signal })));
    expect(err.code).toBe("STEP_ABORTED");
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toEqual([]);
  });
});
