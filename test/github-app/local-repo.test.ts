/**
 * A run of no GitHub repository (a local repository's `_local/<folder>` name) has no check run:
 * the reporter records it as skipped without asking GitHub anything about it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CONFIG, validateFlow } from "../../src/core/flow/validate.js";
import { startApp, type AppHarness } from "./harness.js";

let app: AppHarness;

beforeAll(async () => {
  app = await startApp({ files: { "README.md": "# widgets\n" } });
});
afterAll(async () => {
  await app?.stop();
});

describe("runs of no GitHub repository", { timeout: 30_000 }, () => {
  it("are reported as skipped, with no request to GitHub about them", async () => {
    const flow = validateFlow("on: { manual: {} }\nsteps:\n  - id: a\n    function: { code: 'return 1' }\n", { file: "local.yml" }).flow!;
    const before = app.gh.sim.requests.length;
    const id = await app.sluice.runtime.createRun({
      flow,
      config: DEFAULT_CONFIG,
      release: { sha: "a".repeat(40), ref: "refs/heads/main", kind: "live" },
      repo: "_local/demo",
      inputs: {},
      trigger: { type: "manual", actor: "alice" },
    });
    await app.sluice.runtime.advance(id);
    expect((await app.ended(id)).status).toBe("succeeded");
    const report = await app.waitFor("the report", async () => {
      const r = await app.sluice.store.getReport(id);
      return r && r.reportedSeq > 0 ? r : undefined;
    });
    expect(report.report).toMatchObject({ skipped: expect.stringContaining("_local/demo") });
    expect(app.gh.sim.requests.slice(before).filter((r) => JSON.stringify(r).includes("_local"))).toEqual([]);
  });
});
