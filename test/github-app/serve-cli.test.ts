/**
 * `sluice serve` as a real process (the built CLI), against the simulator: it serves
 * webhooks, runs a flow, and stops cleanly on SIGTERM; a bad environment is refused up front.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CLI, sluice } from "../support/cli.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import { freePort } from "../support/net.js";
import { waitFor } from "./harness.js";

const HELLO = `name: hello
on:
  manual:
steps:
  - id: greet
    function:
      code: return "hello";
`;

let gh: GitHubFixture;
let child: ChildProcess | undefined;
const dir = mkdtempSync(join(tmpdir(), "sluice-serve-"));

beforeAll(async () => {
  gh = await startGitHub({ files: { ".github/flows/hello.yml": HELLO } });
});
afterAll(async () => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await gh?.sim.stop();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  expect(gh.sim.violations).toEqual([]);
});

describe("sluice serve", { timeout: 60_000 }, () => {
  it("refuses an invalid environment with ENV_INVALID", () => {
    const r = sluice(dir, ["serve", "--json"], { APP_ID: "abc", PORT: "0" });
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ ok: false, error: { code: "ENV_INVALID" } });
    expect(r.json.error.message).toContain("APP_ID must be the app's numeric id");
  });

  it("serves webhooks with the worker in one process, and stops on SIGTERM", async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [CLI, "serve", "--json"], {
      cwd: dir,
      env: { ...process.env, ...gh.env, PORT: String(port), HOST: "127.0.0.1", SLUICE_HOME: join(dir, "state"), LOG_LEVEL: "fatal" },
    });
    child = proc;
    let stderr = "";
    let stdout = "";
    proc.stderr.on("data", (d) => (stderr += d));
    proc.stdout.on("data", (d) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => proc.on("exit", (code) => resolve(code)));
    await waitFor("the server to listen", () => stderr.includes(`listening on http://127.0.0.1:${port}`));
    const repo = "acme/widgets";
    const issue = gh.sim.createIssue(repo, { title: "hi" });
    const res = await gh.sim.sendWebhook(`http://127.0.0.1:${port}/api/github/webhooks`, "issue_comment", gh.sim.payloads.issueComment({ repo, issue: issue.number, sender: "acme", body: "/run hello" }), { secret: gh.webhookSecret });
    expect(res.status).toBe(200);
    const check = await waitFor("the run's check run", () => gh.sim.checkRunsOf(repo).find((c) => c.name === "sluice: hello" && c.status === "completed"));
    expect(check.conclusion).toBe("success");
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    proc.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ kind: "Server", ok: true, data: { mode: "app", stopped: true } });
  });
});
