/** Concurrency groups across real processes: queue, cancel_new, cancel_running. */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const flow = (name: string, mode: string) => `
name: ${name}
on: { manual: { inputs: { target: { type: string, default: prod } } } }
concurrency: { group: "deploy-\${{ inputs.target }}", on_conflict: ${mode} }
steps:
  - id: hold
    wait: { callback: {} }
`;

let repo: TestRepo;
let env: Record<string, string>;
beforeAll(() => {
  repo = makeRepo({
    ".github/flows/queued.yml": flow("queued", "queue"),
    ".github/flows/polite.yml": flow("polite", "cancel_new"),
    ".github/flows/pushy.yml": flow("pushy", "cancel_running"),
  });
  env = { SLUICE_HOME: join(repo.dir, ".state") };
});
afterAll(() => repo.remove());
const run = (args: string[]) => sluice(repo.dir, [...args, "--json"], env);
const status = (id: string) => run(["runs", "show", id]).json.data.status;

describe("concurrency groups", () => {
  it("queue: a second run waits for the first, then a worker starts it", () => {
    const a = run(["run", "queued"]).json.data.id;
    expect(status(a)).toBe("waiting");
    const b = run(["run", "queued"]);
    expect(b.code).toBe(3);
    expect(b.json.data.status).toBe("queued");
    // Another group (another target) is not held up.
    expect(run(["run", "queued", "--input", "target=staging"]).json.data.status).toBe("waiting");
    expect(run(["callback", a, "hold"]).json.data.status).toBe("succeeded");
    run(["worker", "--once"]);
    expect(status(b.json.data.id)).toBe("waiting");
    run(["callback", b.json.data.id, "hold"]);
  });

  it("cancel_new: a run that finds its group busy is cancelled at once", () => {
    const first = run(["run", "polite"]).json.data.id;
    const second = run(["run", "polite"]);
    expect(second.code).toBe(1);
    expect(second.json.data).toMatchObject({ status: "cancelled", error: { code: "CONCURRENCY" } });
    expect(status(first)).toBe("waiting");
    run(["runs", "cancel", first]);
  });

  it("cancel_running: a new run cancels the active one and goes ahead", () => {
    const old = run(["run", "pushy"]).json.data.id;
    const fresh = run(["run", "pushy"]);
    expect(fresh.json.data.status).toBe("waiting");
    const oldRun = run(["runs", "show", old]).json.data;
    expect(oldRun.status).toBe("cancelled");
    expect(oldRun.error.message).toContain(`superseded by run ${fresh.json.data.id}`);
  });
});
