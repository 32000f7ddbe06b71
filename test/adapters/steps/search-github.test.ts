import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { searchExecutor } from "../../../src/adapters/steps/search.js";
import { NonRetriableError, RetryAfterError } from "../../../src/core/errors.js";
import type { StepContext } from "../../../src/ports/step-executor.js";
import { failure, makeStepContext } from "../../support/step-context.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";

let gh: GitHubFixture;

beforeAll(async () => {
  gh = await startGitHub({
    files: {
      "README.md": "# widgets\nA widget factory.\n",
      "src/retry.ts": "// retries the flaky network call\nexport function retryFlaky() {}\n",
      "src/other.ts": "export const x = 1;\n",
    },
  });
  gh.sim.repo("acme/widgets").description = "Widgets, flaky ones included";
  gh.sim.pushCommit("acme/widgets", "main", { "src/other.ts": "export const x = 2;\n" }, { message: "Fix flaky test\n\nThe clock was mocked." });
  gh.sim.createIssue("acme/widgets", { title: "Flaky test in CI", body: "It fails   one run\nin ten.", user: "alice" });
  gh.sim.createIssue("acme/widgets", { title: "Unrelated", body: "nothing to see", user: "alice" });
  gh.sim.pushCommit("acme/widgets", "deflake", { "src/retry.ts": "// fixed\n" });
  gh.sim.createPullRequest("acme/widgets", { head: "deflake", title: "Deflake the flaky test", body: "Makes it stable.", user: "bob" });
  // A repository the installation cannot see: never in any result.
  gh.sim.createRepo("elsewhere/secret", { files: { "flaky.txt": "flaky\n" } });
  gh.sim.createIssue("elsewhere/secret", { title: "Flaky secret issue" });
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


type Result = { title: string; url: string; snippet: string };

describe("search executor: github, against the GitHub simulator", () => {
  it("finds issues and pull requests, with whitespace-flattened snippets", async () => {
    const { outputs } = await searchExecutor.execute({ provider: "github", type: "issues", query: "flaky repo:acme/widgets" }, ctx());
    const results = outputs.results as Result[];
    expect(results.map((r) => r.title).sort()).toEqual(["Deflake the flaky test", "Flaky test in CI"]);
    expect(outputs.total).toBe(2);
    const issue = results.find((r) => r.title === "Flaky test in CI");
    expect(issue).toEqual({ title: "Flaky test in CI", url: `${gh.sim.url}/acme/widgets/issues/1`, snippet: "It fails one run in ten." });
    const q = gh.sim.requests.at(-1);
    expect(q).toMatchObject({ method: "GET", path: "/search/issues", query: { q: "flaky repo:acme/widgets" } });
  });

  it("adds is:pr for pull_requests", async () => {
    const { outputs } = await searchExecutor.execute({ provider: "github", type: "pull_requests", query: "flaky" }, ctx());
    expect((outputs.results as Result[]).map((r) => r.title)).toEqual(["Deflake the flaky test"]);
    expect(gh.sim.requests.at(-1)?.query.q).toBe("flaky is:pr");
  });

  it("finds code, with the matching line as snippet", async () => {
    const { outputs } = await searchExecutor.execute({ provider: "github", type: "code", query: "flaky repo:acme/widgets" }, ctx());
    expect(outputs.results).toEqual([
      {
        title: "acme/widgets: src/retry.ts",
        url: expect.stringContaining("/acme/widgets/blob/"),
        snippet: "// retries the flaky network call",
      },
    ]);
  });

  it("finds commits (first line as title, the rest as snippet) and repositories", async () => {
    const commits = await searchExecutor.execute({ provider: "github", type: "commits", query: "flaky repo:acme/widgets" }, ctx());
    expect(commits.outputs.results).toEqual([
      { title: "Fix flaky test", url: expect.stringContaining("/acme/widgets/commit/"), snippet: "The clock was mocked." },
    ]);
    const repos = await searchExecutor.execute({ provider: "github", type: "repositories", query: "flaky" }, ctx());
    expect(repos.outputs.results).toEqual([
      { title: "acme/widgets", url: `${gh.sim.url}/acme/widgets`, snippet: "Widgets, flaky ones included" },
    ]);
  });

  it("honours the limit across pages and reports the total", async () => {
    for (let i = 0; i < 105; i++) gh.sim.createIssue("acme/widgets", { title: `bulk item ${i}`, user: "alice" });
    const start = gh.sim.requests.length;
    const { outputs } = await searchExecutor.execute({ provider: "github", type: "issues", query: "bulk item", limit: 102 }, ctx());
    expect((outputs.results as Result[]).length).toBe(102);
    expect(outputs.total).toBe(105);
    const pages = gh.sim.requests.slice(start).map((r) => [r.query.page ?? "1", r.query.per_page]);
    expect(pages).toEqual([
      ["1", "100"],
      ["2", "100"],
    ]);
    const few = await searchExecutor.execute({ provider: "github", type: "issues", query: "bulk item", limit: 3 }, ctx());
    expect((few.outputs.results as Result[]).length).toBe(3);
    expect(few.outputs.total).toBe(105);
  });

  it("an empty query is a parameter error; GitHub's 422 for code search without terms is non-retriable", async () => {
    const empty = await failure(searchExecutor.execute({ provider: "github", type: "issues", query: "" }, ctx()));
    expect(empty.code).toBe("PARAM_INVALID");
    const onlyQualifiers = await failure(searchExecutor.execute({ provider: "github", type: "code", query: "repo:acme/widgets" }, ctx()));
    expect(onlyQualifiers).toBeInstanceOf(NonRetriableError);
    expect(onlyQualifiers.details.status).toBe(422);
  });

  it("a rate limit is a RetryAfterError; a 5xx is retryable", async () => {
    gh.sim.failNext({ method: "GET", path: "/search/issues", status: 429, headers: { "retry-after": "30" } });
    const limited = await failure(searchExecutor.execute({ provider: "github", type: "issues", query: "flaky" }, ctx()));
    expect(limited).toBeInstanceOf(RetryAfterError);
    expect((limited as RetryAfterError).retryAfterMs).toBe(30_000);
    gh.sim.failNext({ method: "GET", path: "/search/code", status: 503 });
    const down = await failure(searchExecutor.execute({ provider: "github", type: "code", query: "flaky" }, ctx()));
    expect(down).not.toBeInstanceOf(NonRetriableError);
    expect(down.details.status).toBe(503);
  });

  it("aborts before calling GitHub", async () => {
    const start = gh.sim.requests.length;
    const controller = new AbortController();
    controller.abort();
    const err = await failure(searchExecutor.execute({ provider: "github", type: "issues", query: "flaky" }, ctx({ signal: controller.signal })));
    expect(err.code).toBe("STEP_ABORTED");
    expect(gh.sim.requests.length).toBe(start);
  });
});
