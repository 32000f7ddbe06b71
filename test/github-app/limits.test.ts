/**
 * End to end through the simulator: a pull request that adds a flow file and a config file over
 * 1 MiB gets a failing validate check with a FLOW_TOO_LARGE annotation at line 1 of each, and
 * the app never downloads either file (GitHub says their size first). Each file is a valid flow
 * or config padded with comments: without the limit, both would pass.
 */
import { createHash } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startApp, type AppHarness } from "./harness.js";

const MiB = 1024 * 1024;

/** `head` padded with comment lines to exactly `bytes` bytes (ASCII). */
function padded(head: string, bytes: number): string {
  const line = `# ${"x".repeat(60)}\n`;
  const body = head + line.repeat(Math.floor((bytes - head.length) / line.length));
  return body + "#".repeat(bytes - body.length);
}

/** The SHA git gives a blob: what GitHub's blob API is asked for. */
function blobSha(text: string): string {
  return createHash("sha1").update(`blob ${Buffer.byteLength(text)}\0`).update(text).digest("hex");
}

const SMALL = "name: small\non: { manual: {} }\nsteps:\n  - id: nap\n    sleep: 1ms\n";
const BIG_FLOW = padded("name: big\non: { manual: {} }\nsteps:\n  - id: nap\n    sleep: 1ms\n", MiB + 1);
const BIG_CONFIG = padded("connections: {}\n", MiB + 1);

let app: AppHarness;
const repo = "acme/widgets";

beforeAll(async () => {
  app = await startApp({ files: { "README.md": "# widgets\n", ".github/flows/small.yml": SMALL } });
  app.gh.sim.setPermission(repo, "ann", "write");
});
afterAll(async () => {
  await app?.stop();
});
afterEach(() => {
  expect(app.gh.sim.violations).toEqual([]);
});

describe("flow and config files over 1 MiB", { timeout: 60_000 }, () => {
  it("a pull request adding them gets FLOW_TOO_LARGE annotations at line 1, and neither is downloaded", async () => {
    const { sim } = app.gh;
    sim.pushCommit(repo, "big", { ".github/flows/big.yml": BIG_FLOW, ".github/sluice.yml": BIG_CONFIG }, { author: "ann" });
    const pr = sim.createPullRequest(repo, { head: "big", title: "A big flow", user: "ann" });
    const res = await app.send("pull_request", sim.payloads.pullRequest({ repo, number: pr.number, action: "opened" }));
    expect(res.status).toBe(200);
    const head = sim.pull(repo, pr.number).pull.headSha;
    const check = await app.waitFor("the validate check", () => sim.checkRunsOf(repo, head).find((c) => c.name === "sluice / validate"));

    expect(check.conclusion).toBe("failure");
    expect(check.annotations).toHaveLength(2);
    const message = "the file is 1048577 bytes, more than the 1048576 bytes (1 MiB) a flow or config file may have: it was not parsed";
    expect(check.annotations).toMatchObject([
      { path: ".github/sluice.yml", start_line: 1, end_line: 1, start_column: 1, end_column: 1, annotation_level: "failure", message, title: "FLOW_TOO_LARGE" },
      { path: ".github/flows/big.yml", start_line: 1, end_line: 1, start_column: 1, end_column: 1, annotation_level: "failure", message, title: "FLOW_TOO_LARGE" },
    ]);
    // The small flow was read through its blob; the big files never were.
    const blobReads = sim.requests.filter((r) => r.method === "GET" && r.path.includes("/git/blobs/")).map((r) => r.path.split("/").pop());
    expect(blobReads).toContain(blobSha(SMALL));
    expect(blobReads).not.toContain(blobSha(BIG_FLOW));
    expect(blobReads).not.toContain(blobSha(BIG_CONFIG));
    expect(sim.requests.filter((r) => r.path.endsWith("/contents/.github/flows/big.yml"))).toEqual([]);
  });
});
