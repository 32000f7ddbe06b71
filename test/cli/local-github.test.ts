/**
 * Local mode reaches GitHub through a `github` connection (a token secret): the repository's
 * owner/name comes from its origin remote. Tested against the GitHub simulator.
 */
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ownerRepo } from "../../src/adapters/sources/git-flow-source.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import { sluiceAsync } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

let gh: GitHubFixture;
let repo: TestRepo;
let env: Record<string, string>;

beforeAll(async () => {
  gh = await startGitHub();
  gh.sim.addUser("alice", { type: "User" });
  gh.sim.setPermission("acme/widgets", "alice", "write");
  repo = makeRepo({
    ".github/sluice.yml": `connections:\n  gh: { type: github, secret: GH_TOKEN, base_url: "${gh.sim.url}" }\n`,
    ".github/flows/triage.yml": `
on: { manual: { inputs: { title: { type: string, required: true } } } }
steps:
  - id: open
    github: { create_issue: { title: "\${{ inputs.title }}", labels: [triage] } }
  - id: note
    github: { comment: { issue: "\${{ steps.open.outputs.number }}", body: Opened by Sluice } }
outputs: { number: "\${{ steps.open.outputs.number }}" }
`,
  });
  repo.git("remote", "add", "origin", "git@github.com:acme/widgets.git");
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_SECRET_GH_TOKEN: gh.sim.createUserToken("alice") };
});
afterEach(() => expect(gh.sim.violations).toEqual([]));
afterAll(async () => {
  await gh.sim.stop();
  repo.remove();
});

describe("local github connection", () => {
  it("owner/name is read from https, ssh and scp-like remotes", () => {
    expect(ownerRepo("https://github.com/acme/widgets.git")).toBe("acme/widgets");
    expect(ownerRepo("ssh://git@ghe.example.com/acme/widgets")).toBe("acme/widgets");
    expect(ownerRepo("git@github.com:acme/widgets.git")).toBe("acme/widgets");
    expect(ownerRepo("/srv/git/widgets")).toBeUndefined();
  });

  it("creating an issue is a write: it waits for a person, then acts on the origin's repository", async () => {
    const first = await sluiceAsync(repo.dir, ["run", "triage", "--input", "title=Flaky login test", "--json"], env);
    expect(first.code).toBe(3);
    expect(first.json.data.repo).toBe("acme/widgets");
    expect(first.json.data.gate).toMatchObject({ step: "open", kind: "implicit" });
    const done = await sluiceAsync(repo.dir, ["approve", first.json.data.id, "--as", "bob", "--json"], env);
    expect(done.code).toBe(0);
    const number = done.json.data.outputs.number;
    const issue = gh.sim.issue("acme/widgets", number);
    expect(issue.title).toBe("Flaky login test");
    // The comment is policed as notify: auto-approved, no second gate.
    expect(gh.sim.commentsOf("acme/widgets", number).map((c) => c.body)).toEqual(["Opened by Sluice"]);
  });
});
