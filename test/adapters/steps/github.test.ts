import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { githubExecutor } from "../../../src/adapters/steps/github.js";
import { NonRetriableError, RetryAfterError } from "../../../src/core/errors.js";
import type { StepContext } from "../../../src/ports/step-executor.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";

let gh: GitHubFixture;

beforeAll(async () => {
  gh = await startGitHub({
    files: {
      "README.md": "# widgets\n",
      "src/app.ts": "export const answer = 41;\n",
      "docs/old.md": "old\n",
      ".github/workflows/deploy.yml": "on:\n  workflow_dispatch:\n    inputs:\n      env: { required: true }\njobs: {}\n",
    },
  });
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


function callsSince(start: number): string[] {
  return gh.sim.requests.slice(start).map((r) => `${r.method} ${r.operationId ?? r.path}`);
}

describe("github executor: create_pull_request", () => {
  it("creates the branch through blobs, a tree and a commit, then opens the pull request", async () => {
    const start = gh.sim.requests.length;
    const mainBefore = gh.sim.branchSha("acme/widgets", "main");
    const { outputs } = await githubExecutor.execute(
      {
        create_pull_request: {
          branch: "agent/fix-answer",
          title: "Fix the answer",
          body: "It is 42.",
          files: { "src/app.ts": "export const answer = 42;\n", "src/new/deep.txt": "deep\n", "docs/old.md": null },
        },
      },
      ctx(),
    );
    expect(outputs).toMatchObject({ number: expect.any(Number), branch: "agent/fix-answer", base: "main", created: true });
    expect(outputs.url).toBe(`${gh.sim.url}/acme/widgets/pull/${outputs.number}`);
    const head = gh.sim.branchSha("acme/widgets", "agent/fix-answer");
    expect(outputs.sha).toBe(head);
    expect(outputs.commit).toBe(head);
    expect(gh.sim.repo("acme/widgets").git.commit(head as string)?.parents).toEqual([mainBefore]);
    expect(gh.sim.readFile("acme/widgets", "agent/fix-answer", "src/app.ts")).toBe("export const answer = 42;\n");
    expect(gh.sim.readFile("acme/widgets", "agent/fix-answer", "src/new/deep.txt")).toBe("deep\n");
    expect(gh.sim.readFile("acme/widgets", "agent/fix-answer", "docs/old.md")).toBeUndefined();
    expect(gh.sim.readFile("acme/widgets", "agent/fix-answer", "README.md")).toBe("# widgets\n");
    const pr = gh.sim.pull("acme/widgets", outputs.number as number);
    expect(pr).toMatchObject({ title: "Fix the answer", body: "It is 42.", state: "open", user: "sluice[bot]" });
    expect(pr.pull).toMatchObject({ headRef: "agent/fix-answer", baseRef: "main" });
    expect(gh.sim.pullFiles("acme/widgets", pr.number).map((f) => [f.filename, f.status])).toEqual([
      ["docs/old.md", "removed"],
      ["src/app.ts", "modified"],
      ["src/new/deep.txt", "added"],
    ]);
    expect(callsSince(start)).toEqual([
      "GET repos/get",
      "GET git/get-ref",
      "GET git/get-ref",
      "GET git/get-commit",
      "POST git/create-blob",
      "POST git/create-blob",
      "POST git/create-tree",
      "POST git/create-commit",
      "POST git/create-ref",
      "GET pulls/list",
      "POST pulls/create",
    ]);
  });

  it("is idempotent: a rerun makes no commit and returns the open pull request", async () => {
    const params = {
      create_pull_request: { branch: "agent/idem", base: "main", title: "Idempotent", files: { "idem.txt": "one\n" } },
    };
    const first = await githubExecutor.execute(params, ctx());
    const head = gh.sim.branchSha("acme/widgets", "agent/idem");
    const start = gh.sim.requests.length;
    const again = await githubExecutor.execute(params, ctx());
    expect(again.outputs).toMatchObject({ number: first.outputs.number, created: false, commit: null, sha: head });
    expect(gh.sim.branchSha("acme/widgets", "agent/idem")).toBe(head);
    expect(callsSince(start)).not.toContain("POST git/create-commit");
    expect(callsSince(start)).not.toContain("POST pulls/create");
    const open = [...gh.sim.repo("acme/widgets").issues.values()].filter((i) => i.pull?.headRef === "agent/idem");
    expect(open).toHaveLength(1);

    // New content for the same branch: one more commit, fast-forward, the same pull request.
    const changed = await githubExecutor.execute(
      { create_pull_request: { ...params.create_pull_request, files: { "idem.txt": "two\n" } } },
      ctx(),
    );
    expect(changed.outputs).toMatchObject({ number: first.outputs.number, created: false });
    const newHead = gh.sim.branchSha("acme/widgets", "agent/idem") as string;
    expect(changed.outputs.commit).toBe(newHead);
    expect(gh.sim.repo("acme/widgets").git.commit(newHead)?.parents).toEqual([head]);
    expect(gh.sim.pull("acme/widgets", first.outputs.number as number).pull.headSha).toBe(newHead);
  });

  it("opens a pull request for a branch pushed by someone else, without files", async () => {
    gh.sim.pushCommit("acme/widgets", "pushed-by-agent", { "agent.txt": "done\n" }, { author: "agent-bot" });
    const { outputs } = await githubExecutor.execute({ create_pull_request: { branch: "pushed-by-agent", title: "Agent work" } }, ctx());
    expect(outputs).toMatchObject({ created: true, commit: null, sha: gh.sim.branchSha("acme/widgets", "pushed-by-agent") });
  });

  it("fails clearly on a missing base branch, a missing branch without files and bad parameters", async () => {
    const noBase = await failure(
      githubExecutor.execute({ create_pull_request: { branch: "x1", base: "nope", title: "t", files: { "a.txt": "a" } } }, ctx()),
    );
    expect(noBase).toBeInstanceOf(NonRetriableError);
    expect(noBase.code).toBe("REF_NOT_FOUND");
    const noFiles = await failure(githubExecutor.execute({ create_pull_request: { branch: "never-pushed", title: "t" } }, ctx()));
    expect(noFiles.code).toBe("PARAM_INVALID");
    for (const bad of [
      { create_pull_request: { branch: "bad branch", title: "t", files: { a: "a" } } },
      { create_pull_request: { branch: "ok", title: "t", files: { "../escape": "a" } } },
      { create_pull_request: { branch: "ok", title: "t", files: { a: { nested: true } } } },
      { create_pull_request: { branch: "ok", files: { a: "a" } } },
      { create_pull_request: "not a map" },
      {},
      { comment: { issue: 1, body: "a" }, add_labels: { issue: 1, labels: ["x"] } },
    ]) {
      const err = await failure(githubExecutor.execute(bad, ctx()));
      expect(err.code, JSON.stringify(bad)).toBe("PARAM_INVALID");
      expect(err).toBeInstanceOf(NonRetriableError);
    }
  });

  it("says when no GitHub access is configured", async () => {
    const err = await failure(
      githubExecutor.execute({ comment: { issue: 1, body: "hi" } }, makeStepContext({ repo: "acme/widgets" })),
    );
    expect(err.code).toBe("GITHUB_UNAVAILABLE");
  });
});

describe("github executor: merge_pull_request", () => {
  it("merges, and a rerun reports the merge already done", async () => {
    gh.sim.pushCommit("acme/widgets", "to-merge", { "merge-me.txt": "m\n" });
    const pr = gh.sim.createPullRequest("acme/widgets", { head: "to-merge", title: "Merge me", user: "alice" });
    const { outputs } = await githubExecutor.execute({ merge_pull_request: { number: String(pr.number), method: "squash" } }, ctx());
    const main = gh.sim.branchSha("acme/widgets", "main");
    expect(outputs).toMatchObject({ number: pr.number, merged: true, sha: main, already_merged: false });
    expect(gh.sim.repo("acme/widgets").git.commit(main as string)?.message).toBe(`Merge me (#${pr.number})`);
    const again = await githubExecutor.execute({ merge_pull_request: { number: pr.number, method: "squash" } }, ctx());
    expect(again.outputs).toMatchObject({ merged: true, sha: main, already_merged: true });
  });

  it("refuses a closed pull request and a conflicting one, non-retriably, with GitHub's message", async () => {
    gh.sim.pushCommit("acme/widgets", "closed-one", { "closed.txt": "c\n" });
    const closed = gh.sim.createPullRequest("acme/widgets", { head: "closed-one", title: "Closed" });
    closed.state = "closed";
    const err = await failure(githubExecutor.execute({ merge_pull_request: { number: closed.number } }, ctx()));
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.code).toBe("HTTP_STATUS");
    expect(err.message).toContain("closed");
    expect(err.message).toContain("Pull Request is not mergeable");

    gh.sim.pushCommit("acme/widgets", "conflict-a", { "shared.txt": "a\n" });
    gh.sim.pushCommit("acme/widgets", "conflict-b", { "shared.txt": "b\n" });
    const a = gh.sim.createPullRequest("acme/widgets", { head: "conflict-a", title: "A" });
    const b = gh.sim.createPullRequest("acme/widgets", { head: "conflict-b", title: "B" });
    await githubExecutor.execute({ merge_pull_request: { number: a.number } }, ctx());
    const conflict = await failure(githubExecutor.execute({ merge_pull_request: { number: b.number, method: "rebase" } }, ctx()));
    expect(conflict).toBeInstanceOf(NonRetriableError);
    expect(conflict.message).toContain("conflicts");

    const missing = await failure(githubExecutor.execute({ merge_pull_request: { number: 9999 } }, ctx()));
    expect(missing).toBeInstanceOf(NonRetriableError);
    expect(missing.details.status).toBe(404);
    const badMethod = await failure(githubExecutor.execute({ merge_pull_request: { number: 1, method: "octopus" } }, ctx()));
    expect(badMethod.code).toBe("PARAM_INVALID");
  });
});

describe("github executor: merge_pull_request bound to a head", () => {
  it("merges only the head named by sha: a push after the approval makes GitHub refuse, and nothing is merged", async () => {
    gh.sim.pushCommit("acme/widgets", "bound", { "bound.txt": "reviewed\n" });
    const pr = gh.sim.createPullRequest("acme/widgets", { head: "bound", title: "Bound", user: "alice" });
    const reviewed = pr.pull!.headSha;
    gh.sim.pushCommit("acme/widgets", "bound", { "bound.txt": "sneaked in after the review\n" }, { author: "mallory" });
    const mainBefore = gh.sim.branchSha("acme/widgets", "main");
    const start = gh.sim.requests.length;
    const err = await failure(githubExecutor.execute({ merge_pull_request: { number: pr.number, method: "squash", sha: reviewed } }, ctx()));
    expect(err).toBeInstanceOf(NonRetriableError);
    expect(err.details).toMatchObject({ status: 409, sha: reviewed });
    expect(err.message).toContain(`its head is no longer ${reviewed}`);
    expect(err.message).toContain("Head branch was modified. Review and try the merge again.");
    expect(gh.sim.requests.slice(start).find((r) => r.method === "PUT")?.body).toMatchObject({ sha: reviewed, merge_method: "squash" });
    expect(gh.sim.branchSha("acme/widgets", "main")).toBe(mainBefore);
    expect(gh.sim.pull("acme/widgets", pr.number).pull?.merged).toBe(false);

    const head = gh.sim.pull("acme/widgets", pr.number).pull!.headSha;
    const { outputs } = await githubExecutor.execute({ merge_pull_request: { number: pr.number, method: "squash", sha: head } }, ctx());
    expect(outputs).toMatchObject({ merged: true, already_merged: false });
    expect(gh.sim.readFile("acme/widgets", "main", "bound.txt")).toBe("sneaked in after the review\n");
  });
});

describe("github executor: issues, labels, workflows", () => {
  it("comments on the run's issue by default, or on the one named", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "Run from here", user: "alice" });
    const other = gh.sim.createIssue("acme/widgets", { title: "Elsewhere", user: "alice" });
    const first = await githubExecutor.execute({ comment: { body: "started" } }, ctx({ issue: issue.number }));
    expect(first.outputs).toMatchObject({ id: expect.any(Number), issue: issue.number });
    expect(first.outputs.url).toContain(`/acme/widgets/issues/${issue.number}#issuecomment-`);
    await githubExecutor.execute({ comment: { issue: other.number, body: "also here" } }, ctx({ issue: issue.number }));
    expect(gh.sim.commentsOf("acme/widgets", issue.number).map((c) => [c.user, c.body])).toEqual([["sluice[bot]", "started"]]);
    expect(gh.sim.commentsOf("acme/widgets", other.number).map((c) => c.body)).toEqual(["also here"]);
    const noIssue = await failure(githubExecutor.execute({ comment: { body: "where?" } }, ctx()));
    expect(noIssue.code).toBe("PARAM_INVALID");
    const tooLong = await failure(githubExecutor.execute({ comment: { issue: issue.number, body: "x".repeat(70_000) } }, ctx()));
    expect(tooLong).toBeInstanceOf(NonRetriableError);
    expect(tooLong.message).toContain("Validation Failed");
  });

  it("creates an issue with labels and assignees, and adds labels", async () => {
    gh.sim.setPermission("acme/widgets", "oncall", "write");
    const { outputs } = await githubExecutor.execute(
      { create_issue: { title: "Nightly failed", body: "see run", labels: ["nightly"], assignees: "oncall" } },
      ctx(),
    );
    const issue = gh.sim.issue("acme/widgets", outputs.number as number);
    expect(issue).toMatchObject({ title: "Nightly failed", body: "see run", labels: ["nightly"], assignees: ["oncall"] });
    expect(outputs.url).toBe(`${gh.sim.url}/acme/widgets/issues/${issue.number}`);
    const labelled = await githubExecutor.execute({ add_labels: { issue: issue.number, labels: ["triage", "nightly"] } }, ctx());
    expect(labelled.outputs).toEqual({ issue: issue.number, labels: ["nightly", "triage"] });
    const none = await failure(githubExecutor.execute({ add_labels: { issue: issue.number, labels: [] } }, ctx()));
    expect(none.code).toBe("PARAM_INVALID");
  });

  it("dispatches a workflow on the default branch, and reports GitHub's refusal of unknown inputs", async () => {
    const { outputs } = await githubExecutor.execute(
      { dispatch_workflow: { workflow: "deploy.yml", inputs: { env: "staging" } } },
      ctx(),
    );
    expect(outputs).toEqual({ dispatched: true, workflow: "deploy.yml", ref: "main" });
    expect(gh.sim.dispatches.at(-1)).toMatchObject({ repo: "acme/widgets", workflow: "deploy.yml", ref: "main", inputs: { env: "staging" } });
    const unknownInput = await failure(
      githubExecutor.execute({ dispatch_workflow: { workflow: "deploy.yml", ref: "main", inputs: { env: "x", extra: 1 } } }, ctx()),
    );
    expect(unknownInput).toBeInstanceOf(NonRetriableError);
    expect(unknownInput.message).toContain("Unexpected inputs");
    const missing = await failure(githubExecutor.execute({ dispatch_workflow: { workflow: "nope.yml", ref: "main" } }, ctx()));
    expect(missing.details.status).toBe(404);
  });
});

describe("github executor: failures", () => {
  it("a 429 is a RetryAfterError honouring retry-after; a 403 rate limit too; a 5xx is retryable", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "limits" });
    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 429, headers: { "retry-after": "7" } });
    const limited = await failure(githubExecutor.execute({ comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(limited).toBeInstanceOf(RetryAfterError);
    expect((limited as RetryAfterError).retryAfterMs).toBe(7000);

    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 403 });
    const secondary = await failure(githubExecutor.execute({ comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(secondary).toBeInstanceOf(RetryAfterError);
    expect((secondary as RetryAfterError).retryAfterMs).toBe(1000);

    // A secondary rate limit that names no wait: GitHub's text alone says to back off.
    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 403, headers: { "retry-after": null, "x-ratelimit-remaining": null } });
    const unnamed = await failure(githubExecutor.execute({ comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(unnamed).toBeInstanceOf(RetryAfterError);
    expect((unnamed as RetryAfterError).retryAfterMs).toBe(60_000);

    // A 403 that is no rate limit is final.
    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 403, message: "Resource not accessible by integration", headers: { "retry-after": null, "x-ratelimit-remaining": null } });
    const forbidden = await failure(githubExecutor.execute({ comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(forbidden).toBeInstanceOf(NonRetriableError);
    expect(forbidden.message).toContain("Resource not accessible by integration");

    gh.sim.failNext({ method: "POST", path: /\/comments$/, status: 502 });
    const bad = await failure(githubExecutor.execute({ comment: { issue: issue.number, body: "x" } }, ctx()));
    expect(bad).not.toBeInstanceOf(NonRetriableError);
    expect(bad).not.toBeInstanceOf(RetryAfterError);
    expect(bad.details.status).toBe(502);

    const ok = await githubExecutor.execute({ comment: { issue: issue.number, body: "x" } }, ctx());
    expect(ok.outputs.id).toEqual(expect.any(Number));
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toHaveLength(1);
  });

  it("an injected rate limit in the middle of create_pull_request fails the attempt, and the retry completes it", async () => {
    const params = { create_pull_request: { branch: "agent/limited", title: "Limited", files: { "l.txt": "l\n" } } };
    gh.sim.failNext({ method: "POST", path: /\/pulls$/, status: 429 });
    const err = await failure(githubExecutor.execute(params, ctx()));
    expect(err).toBeInstanceOf(RetryAfterError);
    const head = gh.sim.branchSha("acme/widgets", "agent/limited");
    expect(head).toBeDefined();
    const retry = await githubExecutor.execute(params, ctx());
    expect(retry.outputs).toMatchObject({ created: true, commit: null, sha: head });
  });

  it("aborts: before the first call, and between calls", async () => {
    const before = gh.sim.requests.length;
    const aborted = new AbortController();
    aborted.abort();
    const early = await failure(githubExecutor.execute({ comment: { issue: 1, body: "x" } }, ctx({ signal: aborted.signal })));
    expect(early.code).toBe("STEP_ABORTED");
    expect(gh.sim.requests.length).toBe(before);

    const controller = new AbortController();
    const inner = gh.githubApi();
    let calls = 0;
    const github = {
      async request(route: string, params?: Record<string, unknown>) {
        const res = await inner.request(route, params);
        calls++;
        controller.abort();
        return res;
      },
    };
    const mid = await failure(
      githubExecutor.execute(
        { create_pull_request: { branch: "agent/aborted", title: "t", files: { "a.txt": "a" } } },
        ctx({ signal: controller.signal, github }),
      ),
    );
    expect(mid.code).toBe("STEP_ABORTED");
    expect(mid).toBeInstanceOf(NonRetriableError);
    expect(calls).toBe(1);
    expect(gh.sim.branchSha("acme/widgets", "agent/aborted")).toBeUndefined();
  });
});
