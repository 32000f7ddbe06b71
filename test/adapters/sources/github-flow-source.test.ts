/** The GitHub flow source and the people lookups, against the GitHub simulator. */
import { createHash } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { personOf, permissionOf, teamsOf } from "../../../src/adapters/github/people.js";
import { GitHubFlowSource, ShaCache } from "../../../src/adapters/sources/github-flow-source.js";
import { MAX_FLOW_FILE_BYTES } from "../../../src/core/flow/yaml-source.js";
import { startGitHub, type GitHubFixture } from "../../github/fixtures.js";

let gh: GitHubFixture;

/** The SHA git gives a blob: what GitHub's blob API is asked for. */
function blobSha(text: string): string {
  return createHash("sha1").update(`blob ${Buffer.byteLength(text)}\0`).update(text).digest("hex");
}
const repo = "acme/widgets";

beforeAll(async () => {
  gh = await startGitHub({
    files: {
      ".github/flows/b.yaml": "name: b\n",
      ".github/flows/a.yml": "name: a\n",
      ".github/flows/notes.md": "not a flow\n",
      ".github/flows/lib/util.js": "export default 1;\n",
      ".github/sluice.yml": "connections: {}\n",
      "src/app.js": "console.log('hi');\n",
    },
  });
});
afterAll(() => gh?.sim.stop());
afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
});

describe("GitHubFlowSource", () => {
  it("reads the default branch, resolves refs, and refuses unknown ones", async () => {
    const source = new GitHubFlowSource(repo, gh.githubApi(), new ShaCache());
    expect(await source.defaultBranch()).toBe("main");
    const head = gh.sim.branchSha(repo, "main")!;
    expect(await source.resolve("main")).toBe(head);
    expect(await source.resolve(head)).toBe(head);
    await expect(source.resolve("no-such-branch")).rejects.toMatchObject({ code: "REF_NOT_FOUND" });
  });

  it("reads the flows, the config and any file at a commit, never from a later one", async () => {
    const source = new GitHubFlowSource(repo, gh.githubApi(), new ShaCache());
    const first = gh.sim.branchSha(repo, "main")!;
    gh.sim.pushCommit(repo, "main", { ".github/flows/a.yml": "name: a2\n", ".github/sluice.yml": null });
    const second = gh.sim.branchSha(repo, "main")!;
    expect(await source.flowFiles(first)).toEqual([
      { path: ".github/flows/a.yml", text: "name: a\n", size: 8 },
      { path: ".github/flows/b.yaml", text: "name: b\n", size: 8 },
    ]);
    expect((await source.flowFiles(second))[0]).toEqual({ path: ".github/flows/a.yml", text: "name: a2\n", size: 9 });
    expect(await source.configFile(first)).toEqual({ path: ".github/sluice.yml", text: "connections: {}\n", size: 16 });
    expect(await source.configFile(second)).toBeUndefined();
    expect(await source.readFile(first, ".github/flows/lib/util.js")).toBe("export default 1;\n");
    expect(await source.readFile(first, "src")).toBeUndefined();
    expect(await source.readFile(first, "missing.txt")).toBeUndefined();
  });

  it("asks GitHub once per commit: what is read at a SHA is cached", async () => {
    const cache = new ShaCache();
    const sha = gh.sim.branchSha(repo, "main")!;
    const before = gh.sim.requests.length;
    const one = new GitHubFlowSource(repo, gh.githubApi(), cache);
    await one.flowFiles(sha);
    await one.configFile(sha);
    const calls = gh.sim.requests.length - before;
    expect(calls).toBeGreaterThan(0);
    const two = new GitHubFlowSource(repo, gh.githubApi(), cache);
    await two.flowFiles(sha);
    await two.configFile(sha);
    expect(gh.sim.requests.length - before).toBe(calls);
  });

  it("does not download a flow or config file over 1 MiB: it comes with its size and no text", async () => {
    const source = new GitHubFlowSource(repo, gh.githubApi(), new ShaCache());
    const big = `name: big\n${"#".repeat(MAX_FLOW_FILE_BYTES)}\n`; // 1 MiB + 11 bytes
    const edge = `name: edge\n${"#".repeat(MAX_FLOW_FILE_BYTES - 12)}\n`; // exactly 1 MiB
    const { sha } = gh.sim.pushCommit(repo, "large", { ".github/flows/big.yml": big, ".github/flows/edge.yml": edge, ".github/sluice.yml": big });
    const before = gh.sim.requests.length;
    const files = await source.flowFiles(sha);
    expect(files.find((f) => f.path.endsWith("big.yml"))).toEqual({ path: ".github/flows/big.yml", text: "", size: MAX_FLOW_FILE_BYTES + 11 });
    expect(files.find((f) => f.path.endsWith("edge.yml"))).toEqual({ path: ".github/flows/edge.yml", text: edge, size: MAX_FLOW_FILE_BYTES });
    expect(await source.configFile(sha)).toEqual({ path: ".github/sluice.yml", text: "", size: MAX_FLOW_FILE_BYTES + 11 });
    const blobs = gh.sim.requests.slice(before).filter((r) => r.path.includes("/git/blobs/")).map((r) => r.path.split("/").pop());
    expect(blobs).toContain(blobSha(edge));
    expect(blobs).not.toContain(blobSha(big));
    // A function's module is no flow: readFile reads it whatever its size.
    expect(await source.readFile(sha, ".github/flows/big.yml")).toBe(big);
  });

  it("says so when the repository is not visible, and when GitHub fails", async () => {
    const source = new GitHubFlowSource("acme/nope", gh.githubApi(), new ShaCache());
    await expect(source.defaultBranch()).rejects.toMatchObject({ code: "NOT_FOUND" });
    const sha = gh.sim.branchSha(repo, "main")!;
    gh.sim.failNext({ method: "GET", path: "/contents/.github/flows", status: 500, times: 10 });
    const failing = new GitHubFlowSource(repo, gh.githubApi(), new ShaCache());
    await expect(failing.flowFiles(sha)).rejects.toMatchObject({ code: "GITHUB_UNAVAILABLE" });
    gh.sim.takeViolations();
  });
});

describe("people", () => {
  it("reads a person's permission, team membership and botness from GitHub", async () => {
    const api = gh.githubApi();
    gh.sim.setPermission(repo, "mia", "maintain");
    gh.sim.setPermission(repo, "tom", "triage");
    gh.sim.addUser("nobody");
    expect(await permissionOf(api, repo, "acme")).toBe("admin");
    expect(await permissionOf(api, repo, "mia")).toBe("maintain");
    expect(await permissionOf(api, repo, "tom")).toBe("triage");
    expect(await permissionOf(api, repo, "nobody")).toBe("read"); // a public repository
    expect(await permissionOf(api, repo, "ghost-who-does-not-exist")).toBe("none");
    gh.sim.addOrg("platform");
    gh.sim.addTeamMember("platform", "ops", "mia");
    expect(await teamsOf(api, "mia", ["platform/ops", "platform/dev", "malformed"])).toEqual(["platform/ops"]);
    expect(await teamsOf(api, "tom", ["platform/ops"])).toEqual([]);
    expect(await personOf(api, repo, { login: "mia", type: "User" }, ["platform/ops"])).toEqual({ login: "mia", is_bot: false, permission: "maintain", teams: ["platform/ops"] });
    expect(await personOf(api, repo, { login: "deploybot[bot]", type: "Bot" }, ["platform/ops"])).toEqual({ login: "deploybot[bot]", is_bot: true, permission: "none", teams: [] });
  });
});
