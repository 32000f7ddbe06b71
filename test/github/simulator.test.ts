import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createSign } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Octokit } from "@octokit/rest";
import { Webhooks } from "@octokit/webhooks";
import { createNodeMiddleware, createProbot, ProbotOctokit } from "probot";
import { startGitHub, quietLog, type GitHubFixture } from "./fixtures.js";
import { generateAppKeyPair } from "./jwt.js";
import { lineDiff } from "./git-model.js";

let gh: GitHubFixture;
let octokit: Octokit;

beforeAll(async () => {
  gh = await startGitHub({
    files: {
      "README.md": "# widgets\n",
      ".github/flows/hello.yml": "name: hello\non: { manual: {} }\nsteps:\n  - id: a\n    sleep: 1s\n",
      ".github/workflows/deploy.yml": "on:\n  workflow_dispatch:\n    inputs:\n      env: { required: true }\njobs: {}\n",
    },
  });
  octokit = gh.octokit();
});

afterAll(async () => {
  await gh.sim.stop();
});

afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
  // The simulator's own answers match GitHub's documented response schemas.
  expect(gh.sim.responseViolations).toEqual([]);
});

/** A route string without Octokit's typing, to send requests that break the API description on purpose. */
function untyped(route: string): string {
  return route;
}

function jwt(privateKey: string, claims: Record<string, unknown>): string {
  const enc = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const data = `${enc({ alg: "RS256", typ: "JWT" })}.${enc(claims)}`;
  return `${data}.${createSign("RSA-SHA256").update(data).sign(privateKey, "base64url")}`;
}

describe("app authentication", () => {
  it("exchanges the app JWT for an installation token through Probot pointed at GHE_HOST", async () => {
    const probot = createProbot({ env: gh.env });
    const appOctokit = await probot.auth();
    const { data: app } = await appOctokit.request("GET /app");
    expect(app).toMatchObject({ id: gh.app.id, slug: "sluice" });
    const { data: inst } = await appOctokit.request("GET /repos/{owner}/{repo}/installation", { owner: "acme", repo: "widgets" });
    expect(inst.id).toBe(gh.installation.id);

    const installationOctokit = await probot.auth(gh.installation.id);
    const { data: repo } = await installationOctokit.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" });
    expect(repo.default_branch).toBe("main");
    const tokenCalls = gh.sim.requests.filter((r) => r.path === `/app/installations/${gh.installation.id}/access_tokens`);
    expect(tokenCalls.length).toBeGreaterThanOrEqual(1);
    expect(tokenCalls.every((r) => r.status === 201)).toBe(true);
    // The GHE-style base URL was used.
    expect(gh.env.GHE_HOST).toBe(gh.sim.host);
  });

  it("works with ProbotOctokit and an explicit baseUrl", async () => {
    const o = new ProbotOctokit({
      auth: { appId: gh.app.id, privateKey: gh.privateKey, installationId: gh.installation.id },
      baseUrl: gh.sim.apiUrl,
      log: quietLog,
    });
    const { data } = await o.request("GET /installation/repositories");
    expect(data.repositories.map((r: { full_name: string }) => r.full_name)).toEqual(["acme/widgets"]);
  });

  it("refuses a JWT signed by another key, an expired JWT and an unknown token", async () => {
    const other = generateAppKeyPair();
    const now = Math.floor(Date.now() / 1000);
    const forged = jwt(other.privateKey, { iat: now - 30, exp: now + 500, iss: String(gh.app.id) });
    const expired = jwt(gh.privateKey, { iat: now - 1200, exp: now - 600, iss: String(gh.app.id) });
    const good = jwt(gh.privateKey, { iat: now - 30, exp: now + 500, iss: String(gh.app.id) });
    const post = (token: string) =>
      new Octokit({ baseUrl: gh.sim.url, auth: token, log: quietLog }).request("POST /app/installations/{installation_id}/access_tokens", {
        installation_id: gh.installation.id,
      });
    await expect(post(forged)).rejects.toMatchObject({ status: 401 });
    await expect(post(expired)).rejects.toMatchObject({ status: 401 });
    const ok = await post(good);
    expect(ok.status).toBe(201);
    expect(ok.data.token).toMatch(/^ghs_/);
    const unknown = new Octokit({ baseUrl: gh.sim.url, auth: "ghs_nope", log: quietLog });
    await expect(unknown.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" })).rejects.toMatchObject({ status: 401 });
    const anonymous = new Octokit({ baseUrl: gh.sim.url, log: quietLog });
    await expect(anonymous.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" })).rejects.toMatchObject({ status: 401 });
  });

  it("hides repositories the installation does not cover", async () => {
    gh.sim.createRepo("other/private-thing");
    await expect(octokit.request("GET /repos/{owner}/{repo}", { owner: "other", repo: "private-thing" })).rejects.toMatchObject({
      status: 404,
    });
  });
});

describe("contents and git data", () => {
  it("reads contents at a SHA, raw and as JSON, and lists directories and trees", async () => {
    const first = gh.sim.branchSha("acme/widgets", "main") as string;
    gh.sim.pushCommit("acme/widgets", "main", { "README.md": "# widgets v2\n" }, { message: "v2" });
    const atFirst = await octokit.request("GET /repos/{owner}/{repo}/contents/{path}", {
      owner: "acme",
      repo: "widgets",
      path: "README.md",
      ref: first,
    });
    expect(Array.isArray(atFirst.data)).toBe(false);
    const file = atFirst.data as { content: string; encoding: string; sha: string };
    expect(file.encoding).toBe("base64");
    expect(Buffer.from(file.content, "base64").toString("utf8")).toBe("# widgets\n");
    const raw = await octokit.request("GET /repos/{owner}/{repo}/contents/{path}", {
      owner: "acme",
      repo: "widgets",
      path: "README.md",
      mediaType: { format: "raw" },
    });
    expect(raw.data).toBe("# widgets v2\n");
    const nested = await octokit.request("GET /repos/{owner}/{repo}/contents/{path}", {
      owner: "acme",
      repo: "widgets",
      path: ".github/flows/hello.yml",
      ref: "main",
    });
    expect((nested.data as { path: string }).path).toBe(".github/flows/hello.yml");
    const dir = await octokit.request("GET /repos/{owner}/{repo}/contents/{path}", { owner: "acme", repo: "widgets", path: ".github" });
    expect((dir.data as { name: string; type: string }[]).map((e) => [e.name, e.type])).toEqual([
      ["flows", "dir"],
      ["workflows", "dir"],
    ]);
    await expect(
      octokit.request("GET /repos/{owner}/{repo}/contents/{path}", { owner: "acme", repo: "widgets", path: "nope.txt" }),
    ).rejects.toMatchObject({ status: 404 });

    const tree = await octokit.request("GET /repos/{owner}/{repo}/git/trees/{tree_sha}", {
      owner: "acme",
      repo: "widgets",
      tree_sha: first,
      recursive: "1",
    });
    const paths = tree.data.tree.map((e: { path?: string }) => e.path);
    expect(paths).toContain(".github/flows/hello.yml");
    const blobEntry = tree.data.tree.find((e: { path?: string }) => e.path === "README.md") as { sha: string };
    const blob = await octokit.request("GET /repos/{owner}/{repo}/git/blobs/{file_sha}", {
      owner: "acme",
      repo: "widgets",
      file_sha: blobEntry.sha,
    });
    expect(Buffer.from(blob.data.content, "base64").toString("utf8")).toBe("# widgets\n");
  });

  it("builds a commit from blobs and trees, moves refs fast-forward only, and compares", async () => {
    const base = (await octokit.request("GET /repos/{owner}/{repo}/git/ref/{ref}", { owner: "acme", repo: "widgets", ref: "heads/main" }))
      .data.object.sha;
    const baseCommit = await octokit.request("GET /repos/{owner}/{repo}/git/commits/{commit_sha}", {
      owner: "acme",
      repo: "widgets",
      commit_sha: base,
    });
    const blob = await octokit.request("POST /repos/{owner}/{repo}/git/blobs", {
      owner: "acme",
      repo: "widgets",
      content: "hello\n",
      encoding: "utf-8",
    });
    const tree = await octokit.request("POST /repos/{owner}/{repo}/git/trees", {
      owner: "acme",
      repo: "widgets",
      base_tree: baseCommit.data.tree.sha,
      tree: [{ path: "docs/hello.txt", mode: "100644", type: "blob", sha: blob.data.sha }],
    });
    const commit = await octokit.request("POST /repos/{owner}/{repo}/git/commits", {
      owner: "acme",
      repo: "widgets",
      message: "Add hello",
      tree: tree.data.sha,
      parents: [base],
    });
    expect(commit.status).toBe(201);
    expect(commit.data.author.name).toBe("sluice[bot]");
    const ref = await octokit.request("POST /repos/{owner}/{repo}/git/refs", {
      owner: "acme",
      repo: "widgets",
      ref: "refs/heads/feature/hello",
      sha: commit.data.sha,
    });
    expect(ref.data.ref).toBe("refs/heads/feature/hello");
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/git/refs", { owner: "acme", repo: "widgets", ref: "refs/heads/feature/hello", sha: base }),
    ).rejects.toMatchObject({ status: 422 });
    // Moving the branch back to its parent is not a fast-forward.
    await expect(
      octokit.request("PATCH /repos/{owner}/{repo}/git/refs/{ref}", { owner: "acme", repo: "widgets", ref: "heads/feature/hello", sha: base }),
    ).rejects.toMatchObject({ status: 422 });
    expect(gh.sim.readFile("acme/widgets", "feature/hello", "docs/hello.txt")).toBe("hello\n");

    const cmp = await octokit.request("GET /repos/{owner}/{repo}/compare/{basehead}", {
      owner: "acme",
      repo: "widgets",
      basehead: "main...feature/hello",
    });
    expect(cmp.data).toMatchObject({ status: "ahead", ahead_by: 1, behind_by: 0, total_commits: 1 });
    expect(cmp.data.files?.map((f: { filename: string; status: string }) => [f.filename, f.status])).toEqual([["docs/hello.txt", "added"]]);

    const commitApi = await octokit.request("GET /repos/{owner}/{repo}/commits/{ref}", { owner: "acme", repo: "widgets", ref: "feature/hello" });
    expect(commitApi.data.sha).toBe(commit.data.sha);
    expect(commitApi.data.files?.[0]?.filename).toBe("docs/hello.txt");
    const branch = await octokit.request("GET /repos/{owner}/{repo}/branches/{branch}", { owner: "acme", repo: "widgets", branch: "feature/hello" });
    expect(branch.data.commit.sha).toBe(commit.data.sha);
    const legacy = await octokit.request("GET /repos/{owner}/{repo}/git/refs", { owner: "acme", repo: "widgets" });
    expect(legacy.data.map((r: { ref: string }) => r.ref)).toContain("refs/heads/feature/hello");
  });

  it("hashes objects exactly as git does", () => {
    const repo = gh.sim.repo("acme/widgets");
    expect(repo.git.writeBlob("hello\n")).toBe("ce013625030ba8dba906f756967f9e9ca394464a");
    expect(repo.git.writeTree([])).toBe("4b825dc642cb6eb9a060e54bf8d69288fbee4904");
  });

  it("diffs lines with context", () => {
    const d = lineDiff("a\nb\nc\n", "a\nB\nc\nd\n");
    expect(d).toMatchObject({ additions: 2, deletions: 1 });
    expect(d.patch).toBe("@@ -1,3 +1,4 @@\n a\n-b\n+B\n c\n+d");
  });
});

describe("check runs", () => {
  it("creates and updates a check run, keeping annotations and actions", async () => {
    const sha = gh.sim.branchSha("acme/widgets", "main") as string;
    const created = await octokit.request("POST /repos/{owner}/{repo}/check-runs", {
      owner: "acme",
      repo: "widgets",
      name: "sluice: hello",
      head_sha: sha,
      external_id: "run-1",
      status: "in_progress",
      output: {
        title: "Running",
        summary: "step a",
        annotations: [{ path: ".github/flows/hello.yml", start_line: 3, end_line: 3, annotation_level: "warning", message: "slow" }],
      },
      actions: [{ label: "Approve", description: "Approve the gate", identifier: "approve" }],
    });
    expect(created.status).toBe(201);
    expect(created.data.app?.id).toBe(gh.app.id);
    const id = created.data.id;
    const updated = await octokit.request("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", {
      owner: "acme",
      repo: "widgets",
      check_run_id: id,
      conclusion: "success",
      output: {
        title: "Done",
        summary: "all good",
        annotations: [{ path: ".github/flows/hello.yml", start_line: 1, end_line: 1, annotation_level: "notice", message: "ok" }],
      },
    });
    expect(updated.data).toMatchObject({ status: "completed", conclusion: "success", external_id: "run-1" });
    expect(updated.data.output.annotations_count).toBe(2);
    const run = gh.sim.checkRuns.get(Number(id));
    expect(run?.actions.map((a) => a.identifier)).toEqual(["approve"]);
    const got = await octokit.request("GET /repos/{owner}/{repo}/check-runs/{check_run_id}", { owner: "acme", repo: "widgets", check_run_id: id });
    expect(got.data.output.summary).toBe("all good");
    const list = await octokit.request("GET /repos/{owner}/{repo}/commits/{ref}/check-runs", {
      owner: "acme",
      repo: "widgets",
      ref: sha,
      check_name: "sluice: hello",
    });
    expect(list.data.total_count).toBe(1);
    const annotations = await octokit.request("GET /repos/{owner}/{repo}/check-runs/{check_run_id}/annotations", {
      owner: "acme",
      repo: "widgets",
      check_run_id: id,
    });
    expect(annotations.data.map((a) => a.message)).toEqual(["slow", "ok"]);
  });

  it("refuses completion without a conclusion and check runs from a user token", async () => {
    const sha = gh.sim.branchSha("acme/widgets", "main") as string;
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/check-runs", { owner: "acme", repo: "widgets", name: "x", head_sha: sha, status: "completed" }),
    ).rejects.toMatchObject({ status: 422 });
    const user = new Octokit({ baseUrl: gh.sim.url, auth: gh.sim.createUserToken("alice"), log: quietLog });
    await expect(
      user.request("POST /repos/{owner}/{repo}/check-runs", { owner: "acme", repo: "widgets", name: "x", head_sha: sha }),
    ).rejects.toMatchObject({ status: 403 });
  });
});

describe("OpenAPI validation and faults", () => {
  it("answers a request body of the wrong type with 422 and records a violation", async () => {
    const sha = gh.sim.branchSha("acme/widgets", "main") as string;
    await expect(
      octokit.request(untyped("POST /repos/{owner}/{repo}/check-runs"), { owner: "acme", repo: "widgets", name: 42, head_sha: sha }),
    ).rejects.toMatchObject({ status: 422 });
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/check-runs", {
        owner: "acme",
        repo: "widgets",
        name: "too many",
        head_sha: sha,
        output: {
          title: "t",
          summary: "s",
          annotations: Array.from({ length: 51 }, () => ({ path: "a", start_line: 1, end_line: 1, annotation_level: "notice", message: "m" })),
        },
      }),
    ).rejects.toMatchObject({ status: 422 });
    await expect(
      octokit.request(untyped("POST /repos/{owner}/{repo}/issues/{issue_number}/comments"), { owner: "acme", repo: "widgets", issue_number: 1 }),
    ).rejects.toMatchObject({ status: 422 });
    const violations = gh.sim.takeViolations();
    expect(violations.map((v) => [v.kind, v.operationId])).toEqual([
      ["body", "checks/create"],
      ["body", "checks/create"],
      ["body", "issues/create-comment"],
    ]);
    expect(violations[0]?.message).toMatch(/name/);
    expect(gh.sim.checkRunsOf("acme/widgets").filter((r) => r.name === "too many")).toEqual([]);
  });

  it("answers an unknown route and an unknown query parameter, and records both", async () => {
    await expect(octokit.request("GET /repos/{owner}/{repo}/no-such-thing", { owner: "acme", repo: "widgets" })).rejects.toMatchObject({
      status: 404,
    });
    await expect(
      octokit.request("GET /repos/{owner}/{repo}/pulls", { owner: "acme", repo: "widgets", stat: "open" }),
    ).rejects.toMatchObject({ status: 422 });
    expect(gh.sim.takeViolations().map((v) => v.kind)).toEqual(["unknown-route", "query"]);
  });

  it("injects a secondary rate limit with retry-after", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "rate", user: "alice" });
    const start = gh.sim.requests.length;
    gh.sim.failNext({ method: "POST", path: /\/issues\/\d+\/comments$/, status: 429, headers: { "retry-after": "7" } });
    const call = () =>
      octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
        owner: "acme",
        repo: "widgets",
        issue_number: issue.number,
        body: "hi",
      });
    const err = (await call().catch((e: unknown) => e)) as { status: number; response: { headers: Record<string, string> } };
    expect(err.status).toBe(429);
    expect(err.response.headers["retry-after"]).toBe("7");
    expect(err.response.headers["x-ratelimit-remaining"]).toBe("0");
    expect(Number(err.response.headers["x-ratelimit-reset"])).toBeGreaterThan(0);
    expect((await call()).status).toBe(201);
    const log = gh.sim.requests.slice(start).filter((r) => r.path === `/repos/acme/widgets/issues/${issue.number}/comments`);
    expect(log.map((r) => r.status)).toEqual([429, 201]);
  });

  it("answers 403 rate limits as Probot expects: a secondary limit reaches the app, a primary one is retried", async () => {
    const probot = createProbot({ env: gh.env });
    const o = await probot.auth(gh.installation.id);
    const issue = gh.sim.createIssue("acme/widgets", { title: "throttled" });
    const path = new RegExp(`^/repos/acme/widgets/issues/${issue.number}$`);
    const get = () => o.request("GET /repos/{owner}/{repo}/issues/{issue_number}", { owner: "acme", repo: "widgets", issue_number: issue.number });
    gh.sim.failNext({ method: "GET", path, status: 403 });
    await expect(get()).rejects.toMatchObject({ status: 403, message: expect.stringContaining("secondary rate limit") });
    const start = gh.sim.requests.length;
    gh.sim.failNext({
      method: "GET",
      path,
      status: 403,
      message: `API rate limit exceeded for installation ID ${gh.installation.id}.`,
      headers: { "x-ratelimit-reset": String(Math.floor(Date.now() / 1000) - 1) },
    });
    const res = await get();
    expect(res.status).toBe(200);
    expect(gh.sim.requests.slice(start).filter((r) => path.test(r.path)).map((r) => r.status)).toEqual([403, 200]);
  });
});

describe("GitHub's limits", () => {
  afterEach(() => {
    gh.sim.enforceLimits(undefined);
    gh.sim.latencyMs = 0;
  });

  it("refuses a content-creating request past a window with a secondary limit, then holds every request", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "limits", user: "alice" });
    gh.sim.enforceLimits({ contentCreating: [{ limit: 2, windowMs: 60_000 }], retryAfterSeconds: 30 });
    const post = () =>
      octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", { owner: "acme", repo: "widgets", issue_number: issue.number, body: "hi" });
    await post();
    await post();
    const refused = (await post().catch((e: unknown) => e)) as { status: number; message: string; response: { headers: Record<string, string> } };
    expect(refused.status).toBe(403);
    expect(refused.message).toContain("secondary rate limit");
    expect(refused.response.headers["retry-after"]).toBe("30");
    // During the hold, a read is refused too.
    const held = (await octokit.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" }).catch((e: unknown) => e)) as { status: number };
    expect(held.status).toBe(403);
    expect(gh.sim.limits.events.slice(-2).map((e) => [e.kind, e.method])).toEqual([
      ["content", "POST"],
      ["during-hold", "GET"],
    ]);
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toHaveLength(2);
  });

  it("refuses a request past the most in flight, and records the most seen", async () => {
    gh.sim.enforceLimits({ maxInFlight: 2, retryAfterSeconds: 1 });
    gh.sim.latencyMs = 100;
    const who = `installation:${gh.installation.id}`;
    gh.sim.limits.maxInFlightSeen.set(who, 0);
    const answers = await Promise.all([1, 2, 3].map(() => octokit.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" }).then((r) => r.status, (e: { status: number }) => e.status)));
    expect(answers.sort()).toEqual([200, 200, 403]);
    expect(gh.sim.limits.maxInFlightSeen.get(who)).toBe(3);
    expect(gh.sim.limits.events.at(-1)?.kind).toBe("in-flight");
  });

  it("answers a GET with its ETag, and 304 without counting it when nothing changed", async () => {
    const first = await octokit.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" });
    const etag = first.headers.etag!;
    const remaining = Number(first.headers["x-ratelimit-remaining"]);
    const again = (await octokit.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets", headers: { "if-none-match": etag } }).catch((e: unknown) => e)) as { status: number; response: { headers: Record<string, string> } };
    expect(again.status).toBe(304);
    expect(Number(again.response.headers["x-ratelimit-remaining"])).toBe(remaining);
    gh.repo.description = "changed";
    const changed = await octokit.request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets", headers: { "if-none-match": etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
  });
});

describe("issues, pull requests, people", () => {
  it("comments, reacts, labels and opens issues", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "Flaky test", user: "alice" });
    const c = await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", {
      owner: "acme",
      repo: "widgets",
      issue_number: issue.number,
      body: "looking",
    });
    expect(c.data.user?.login).toBe("sluice[bot]");
    const r1 = await octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", {
      owner: "acme",
      repo: "widgets",
      comment_id: c.data.id,
      content: "eyes",
    });
    const r2 = await octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", {
      owner: "acme",
      repo: "widgets",
      comment_id: c.data.id,
      content: "eyes",
    });
    expect([r1.status, r2.status]).toEqual([201, 200]);
    const edited = await octokit.request("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", {
      owner: "acme",
      repo: "widgets",
      comment_id: c.data.id,
      body: "fixed",
    });
    expect(edited.data.body).toBe("fixed");
    const list = await octokit.request("GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {
      owner: "acme",
      repo: "widgets",
      issue_number: issue.number,
    });
    expect(list.data.map((x: { body?: string }) => x.body)).toEqual(["fixed"]);
    await octokit.request("DELETE /repos/{owner}/{repo}/issues/comments/{comment_id}", { owner: "acme", repo: "widgets", comment_id: c.data.id });
    expect(gh.sim.commentsOf("acme/widgets", issue.number)).toEqual([]);

    const labels = await octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/labels", {
      owner: "acme",
      repo: "widgets",
      issue_number: issue.number,
      labels: ["flaky", "ci"],
    });
    expect(labels.data.map((l: { name: string }) => l.name)).toEqual(["flaky", "ci"]);
    gh.sim.setPermission("acme/widgets", "bob", "write");
    const created = await octokit.request("POST /repos/{owner}/{repo}/issues", {
      owner: "acme",
      repo: "widgets",
      title: "New",
      body: "text",
      labels: ["ci"],
      assignees: ["bob"],
    });
    expect(created.data).toMatchObject({ title: "New", state: "open", assignees: [{ login: "bob" }], labels: [{ name: "ci" }] });
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/issues", { owner: "acme", repo: "widgets", title: "x", assignees: ["nobody-here"] }),
    ).rejects.toMatchObject({ status: 422 });
  });

  it("opens, lists, diffs and merges pull requests, and refuses a conflicting merge", async () => {
    gh.sim.pushCommit("acme/widgets", "fix-1", { "src/a.txt": "a\n" }, { message: "fix 1", author: "alice" });
    const pr = await octokit.request("POST /repos/{owner}/{repo}/pulls", {
      owner: "acme",
      repo: "widgets",
      title: "Fix 1",
      head: "fix-1",
      base: "main",
      body: "please",
    });
    expect(pr.status).toBe(201);
    expect(pr.data).toMatchObject({ state: "open", mergeable: true, head: { ref: "fix-1" }, base: { ref: "main" } });
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/pulls", { owner: "acme", repo: "widgets", title: "again", head: "fix-1", base: "main" }),
    ).rejects.toMatchObject({ status: 422 });
    const listed = await octokit.request("GET /repos/{owner}/{repo}/pulls", { owner: "acme", repo: "widgets", head: "acme:fix-1", state: "open" });
    expect(listed.data.map((p: { number: number }) => p.number)).toEqual([pr.data.number]);
    const files = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}/files", {
      owner: "acme",
      repo: "widgets",
      pull_number: pr.data.number,
    });
    expect(files.data.map((f: { filename: string }) => f.filename)).toEqual(["src/a.txt"]);

    gh.sim.addReview("acme/widgets", pr.data.number, { user: "bob", state: "approved" });
    const reviews = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews", {
      owner: "acme",
      repo: "widgets",
      pull_number: pr.data.number,
    });
    expect(reviews.data.map((r: { state: string; user: { login: string } | null }) => [r.user?.login, r.state])).toEqual([["bob", "APPROVED"]]);

    const mainBefore = gh.sim.branchSha("acme/widgets", "main") as string;
    const merged = await octokit.request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", {
      owner: "acme",
      repo: "widgets",
      pull_number: pr.data.number,
      merge_method: "merge",
    });
    expect(merged.data.merged).toBe(true);
    const mergeCommit = gh.sim.repo("acme/widgets").git.commit(merged.data.sha);
    expect(mergeCommit?.parents).toEqual([mainBefore, pr.data.head.sha]);
    expect(gh.sim.readFile("acme/widgets", "main", "src/a.txt")).toBe("a\n");
    const after = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", { owner: "acme", repo: "widgets", pull_number: pr.data.number });
    expect(after.data).toMatchObject({ merged: true, state: "closed", merge_commit_sha: merged.data.sha, changed_files: 1 });
    await expect(
      octokit.request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", { owner: "acme", repo: "widgets", pull_number: pr.data.number }),
    ).rejects.toMatchObject({ status: 405 });

    // Two branches change the same file differently: the second cannot merge.
    gh.sim.pushCommit("acme/widgets", "left", { "src/b.txt": "left\n" });
    gh.sim.pushCommit("acme/widgets", "right", { "src/b.txt": "right\n" });
    const left = gh.sim.createPullRequest("acme/widgets", { head: "left", title: "left" });
    const right = gh.sim.createPullRequest("acme/widgets", { head: "right", title: "right" });
    await octokit.request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", { owner: "acme", repo: "widgets", pull_number: left.number, merge_method: "squash" });
    const conflicted = await octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", { owner: "acme", repo: "widgets", pull_number: right.number });
    expect(conflicted.data.mergeable).toBe(false);
    await expect(
      octokit.request("PUT /repos/{owner}/{repo}/pulls/{pull_number}/merge", { owner: "acme", repo: "widgets", pull_number: right.number }),
    ).rejects.toMatchObject({ status: 405, message: expect.stringContaining("not mergeable") });
  });

  it("reports permissions and team memberships", async () => {
    gh.sim.setPermission("acme/widgets", "carol", "maintain");
    gh.sim.addUser("dave");
    gh.sim.addTeamMember("acme", "platform", "carol");
    const p = await octokit.request("GET /repos/{owner}/{repo}/collaborators/{username}/permission", {
      owner: "acme",
      repo: "widgets",
      username: "carol",
    });
    expect(p.data).toMatchObject({ permission: "write", role_name: "maintain", user: { login: "carol" } });
    const d = await octokit.request("GET /repos/{owner}/{repo}/collaborators/{username}/permission", {
      owner: "acme",
      repo: "widgets",
      username: "dave",
    });
    expect(d.data.permission).toBe("read");
    const m = await octokit.request("GET /orgs/{org}/teams/{team_slug}/memberships/{username}", { org: "acme", team_slug: "platform", username: "carol" });
    expect(m.data).toMatchObject({ role: "member", state: "active" });
    await expect(
      octokit.request("GET /orgs/{org}/teams/{team_slug}/memberships/{username}", { org: "acme", team_slug: "platform", username: "dave" }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("answers GET /user with a user token's user, and refuses it to an installation as GitHub does", async () => {
    const user = new Octokit({ baseUrl: gh.sim.url, auth: gh.sim.createUserToken("erin"), log: quietLog });
    expect((await user.request("GET /user")).data).toMatchObject({ login: "erin", type: "User" });
    await expect(octokit.request("GET /user")).rejects.toMatchObject({ status: 403, message: expect.stringContaining("Resource not accessible by integration") });
    expect(gh.sim.responseViolations).toEqual([]);
  });

  it("shows a user the public repositories and the private ones they have a role on, as GitHub does", async () => {
    gh.sim.createRepo("acme/vault", { private: true });
    gh.sim.setPermission("acme/vault", "frank", "read");
    const as = (login: string) => new Octokit({ baseUrl: gh.sim.url, auth: gh.sim.createUserToken(login), log: quietLog });
    expect((await as("frank").request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "vault" })).status).toBe(200);
    await expect(as("gina").request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "vault" })).rejects.toMatchObject({ status: 404 });
    expect((await as("gina").request("GET /repos/{owner}/{repo}", { owner: "acme", repo: "widgets" })).status).toBe(200);
  });

  it("runs GitHub's OAuth web flow: authorize as the signed-in person, a one-time code, a user token", async () => {
    gh.sim.oauth.addClient({ clientId: "Iv1.sim", clientSecret: "shh" });
    gh.sim.oauth.signIn("hana");
    const page = await fetch(`${gh.sim.url}/login/oauth/authorize?client_id=Iv1.sim&redirect_uri=${encodeURIComponent("http://app.test/cb")}&state=xyz`);
    expect(page.status).toBe(200);
    const back = new URL((/id="authorize" href="([^"]+)"/.exec(await page.text())![1]!).replace(/&#38;/g, "&"));
    expect([back.origin + back.pathname, back.searchParams.get("state")]).toEqual(["http://app.test/cb", "xyz"]);
    const exchange = (body: Record<string, string>) =>
      fetch(`${gh.sim.url}/login/oauth/access_token`, { method: "POST", headers: { accept: "application/json", "content-type": "application/json" }, body: JSON.stringify(body) }).then((r) => r.json() as Promise<Record<string, string>>);
    const code = back.searchParams.get("code")!;
    expect((await exchange({ client_id: "Iv1.sim", client_secret: "wrong", code })).error).toBe("incorrect_client_credentials");
    const ok = await exchange({ client_id: "Iv1.sim", client_secret: "shh", code, redirect_uri: "http://app.test/cb" });
    expect(ok.token_type).toBe("bearer");
    const user = new Octokit({ baseUrl: gh.sim.url, auth: ok.access_token, log: quietLog });
    expect((await user.request("GET /user")).data.login).toBe("hana");
    expect((await exchange({ client_id: "Iv1.sim", client_secret: "shh", code })).error).toBe("bad_verification_code");
    gh.sim.oauth.signIn(undefined);
    expect((await fetch(`${gh.sim.url}/login/oauth/authorize?client_id=Iv1.sim&redirect_uri=http://app.test/cb`)).status).toBe(401);
  });

  it("dispatches a workflow, checking its inputs", async () => {
    const res = await octokit.request("POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", {
      owner: "acme",
      repo: "widgets",
      workflow_id: "deploy.yml",
      ref: "main",
      inputs: { env: "prod" },
    });
    expect(res.status).toBe(204);
    expect(gh.sim.dispatches.at(-1)).toMatchObject({ workflow: "deploy.yml", ref: "main", inputs: { env: "prod" } });
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", {
        owner: "acme",
        repo: "widgets",
        workflow_id: "deploy.yml",
        ref: "main",
        inputs: { other: "x" },
      }),
    ).rejects.toMatchObject({ status: 422 });
    await expect(
      octokit.request("POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches", {
        owner: "acme",
        repo: "widgets",
        workflow_id: "missing.yml",
        ref: "main",
      }),
    ).rejects.toMatchObject({ status: 404 });
  });

  it("searches issues, code, commits and repositories", async () => {
    gh.sim.createIssue("acme/widgets", { title: "Searchable needle issue", user: "alice", labels: ["needle-label"] });
    const issues = await octokit.request("GET /search/issues", { q: "needle repo:acme/widgets is:issue label:needle-label" });
    expect(issues.data.items.map((i: { title: string }) => i.title)).toEqual(["Searchable needle issue"]);
    const code = await octokit.request("GET /search/code", { q: "sleep repo:acme/widgets extension:yml" });
    expect(code.data.items.map((i: { path: string }) => i.path)).toEqual([".github/flows/hello.yml"]);
    const commits = await octokit.request("GET /search/commits", { q: "v2 repo:acme/widgets" });
    expect(commits.data.items.map((c: { commit: { message: string } }) => c.commit.message)).toEqual(["v2"]);
    const repos = await octokit.request("GET /search/repositories", { q: "widgets" });
    expect(repos.data.items.map((r: { full_name: string }) => r.full_name)).toEqual(["acme/widgets"]);
  });

  it("paginates with Link headers that Octokit follows", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "many comments" });
    for (let i = 0; i < 7; i++) gh.sim.addComment("acme/widgets", issue.number, { user: "alice", body: `c${i}` });
    const all = await octokit.paginate("GET /repos/{owner}/{repo}/issues/{issue_number}/comments", {
      owner: "acme",
      repo: "widgets",
      issue_number: issue.number,
      per_page: 3,
    });
    expect(all.map((c: { body?: string }) => c.body)).toEqual(["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
  });
});

describe("webhooks", () => {
  let receiver: Server;
  let url = "";
  const received: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(202).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  });

  afterAll(async () => {
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  it("signs a webhook that @octokit/webhooks verifies, and a forged one that it refuses", async () => {
    const issue = gh.sim.createIssue("acme/widgets", { title: "hooked", user: "alice" });
    const payload = gh.sim.payloads.issueComment({ repo: "acme/widgets", issue: issue.number, sender: "alice", body: "/status" });
    expect(payload).toMatchObject({
      action: "created",
      comment: { body: "/status", user: { login: "alice" } },
      issue: { number: issue.number },
      repository: { full_name: "acme/widgets" },
      installation: { id: gh.installation.id },
      sender: { login: "alice" },
    });
    const webhooks = new Webhooks({ secret: gh.webhookSecret });
    const good = await gh.sim.sendWebhook(url, "issue_comment", payload, { secret: gh.webhookSecret, deliveryId: "d-1" });
    expect(good.status).toBe(202);
    const got = received.at(-1);
    expect(got?.headers["x-github-event"]).toBe("issue_comment");
    expect(got?.headers["x-github-delivery"]).toBe("d-1");
    expect(await webhooks.verify(got?.body ?? "", String(got?.headers["x-hub-signature-256"]))).toBe(true);

    await gh.sim.sendWebhook(url, "issue_comment", payload, { secret: gh.webhookSecret, forge: true });
    const forged = received.at(-1);
    expect(await webhooks.verify(forged?.body ?? "", String(forged?.headers["x-hub-signature-256"]))).toBe(false);
  });

  it("drives a Probot app end to end: webhook in, API calls back to the simulator", async () => {
    const probot = createProbot({ env: gh.env });
    const middleware = await createNodeMiddleware(
      (app) => {
        app.on("issue_comment.created", async (context) => {
          await context.octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", {
            ...context.repo(),
            comment_id: context.payload.comment.id,
            content: "+1",
          });
          await context.octokit.request("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", context.issue({ body: "pong" }));
        });
      },
      { probot },
    );
    const server = createServer((req, res) => {
      void middleware(req, res, () => res.writeHead(404).end());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/github/webhooks`;
      const issue = gh.sim.createIssue("acme/widgets", { title: "ping me", user: "alice" });
      const payload = gh.sim.payloads.issueComment({ repo: "acme/widgets", issue: issue.number, sender: "alice", body: "ping" });
      const res = await gh.sim.sendWebhook(hookUrl, "issue_comment", payload, { secret: gh.webhookSecret });
      expect(res.status).toBe(200);
      const comments = gh.sim.commentsOf("acme/widgets", issue.number);
      expect(comments.map((c) => [c.user, c.body])).toEqual([
        ["alice", "ping"],
        ["sluice[bot]", "pong"],
      ]);
      expect(comments[0]?.reactions.map((r) => [r.user, r.content])).toEqual([["sluice[bot]", "+1"]]);
      const forged = await gh.sim.sendWebhook(hookUrl, "issue_comment", payload, { secret: gh.webhookSecret, forge: true });
      expect(forged.status).toBe(400);
      expect(gh.sim.commentsOf("acme/widgets", issue.number)).toHaveLength(2);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("builds pull_request, review, push and check_run payloads from the simulator's state", async () => {
    const { before } = gh.sim.pushCommit("acme/widgets", "hooks", { "x.txt": "x\n" }, { author: "alice" });
    const pr = gh.sim.createPullRequest("acme/widgets", { head: "hooks", title: "Hooks", user: "alice" });
    const prPayload = gh.sim.payloads.pullRequest({ repo: "acme/widgets", number: pr.number, action: "opened" });
    expect(prPayload).toMatchObject({ action: "opened", number: pr.number, pull_request: { head: { ref: "hooks", sha: pr.pull?.headSha } } });
    const review = gh.sim.payloads.pullRequestReview({ repo: "acme/widgets", number: pr.number, sender: "bob", state: "approved" });
    expect(review).toMatchObject({ action: "submitted", review: { state: "approved", user: { login: "bob" } } });
    const push = gh.sim.payloads.push({ repo: "acme/widgets", branch: "hooks", before });
    expect(push).toMatchObject({ ref: "refs/heads/hooks", created: true, head_commit: { added: ["x.txt"] } });
    const sha = gh.sim.branchSha("acme/widgets", "hooks") as string;
    const run = await octokit.request("POST /repos/{owner}/{repo}/check-runs", {
      owner: "acme",
      repo: "widgets",
      name: "sluice: gate",
      head_sha: sha,
      actions: [{ label: "Approve", description: "Approve", identifier: "approve" }],
    });
    const click = gh.sim.payloads.checkRunRequestedAction({ repo: "acme/widgets", checkRunId: Number(run.data.id), identifier: "approve", sender: "bob" });
    expect(click).toMatchObject({
      action: "requested_action",
      requested_action: { identifier: "approve" },
      check_run: { id: run.data.id, pull_requests: [{ number: pr.number }] },
    });
  });
});
