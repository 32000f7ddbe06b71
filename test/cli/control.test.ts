/** Control and data commands of local mode: detach + worker, cancel, retry, resources, inputs files. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const FLOWS = {
  ".github/flows/big.yml": `
on: { manual: { inputs: { kb: { type: number, default: 100 } } } }
steps:
  - id: make
    function: { code: "return 'x'.repeat(input.kb * 1024)", input: { kb: "\${{ inputs.kb }}" } }
`,
  ".github/flows/fragile.yml": `
on: { manual: { inputs: { fail: { type: boolean, default: true } } } }
steps:
  - id: first
    kv: { incr: { key: fragile-first, by: 1 } }
  - id: check
    kv: { set: { key: fragile-lock, value: 1, if_version: 0 } }
`,
  ".github/flows/waits.yml": `
on: { manual: {} }
steps:
  - id: nap
    sleep: 1s
  - id: hold
    wait: { callback: {} }
`,
};

let repo: TestRepo;
let env: Record<string, string>;
beforeAll(() => {
  repo = makeRepo(FLOWS);
  env = { SLUICE_HOME: join(repo.dir, ".state") };
});
afterAll(() => repo.remove());
const run = (args: string[]) => sluice(repo.dir, [...args, "--json"], env).json;

describe("detach, worker, cancel", () => {
  it("a detached run is queued until a worker runs it", () => {
    const started = run(["run", "waits", "--detach"]);
    expect(started.data.status).toBe("queued");
    expect(run(["worker", "--once"]).data.advanced).toBeGreaterThanOrEqual(1);
    expect(run(["runs", "show", started.data.id]).data.steps[0].status).toBe("waiting");
  });

  it("cancel ends a waiting run and exits 0 (what was asked was done); a second cancel is NOT_WAITING", () => {
    // The one-second sleep is waited out in the foreground; the run stops at the callback.
    const id = run(["run", "waits"]).data.id;
    expect(run(["runs", "show", id]).data.status).toBe("waiting");
    const cancelled = sluice(repo.dir, ["runs", "cancel", id, "--as", "bob", "--json"], env);
    expect(cancelled.code).toBe(0);
    expect(cancelled.json).toMatchObject({ ok: true, error: null });
    expect(cancelled.json.data.status).toBe("cancelled");
    expect(cancelled.json.data.error.message).toMatch(/cancelled by bob/);
    expect(run(["runs", "cancel", id]).error.code).toBe("NOT_WAITING");
    expect(run(["runs", "list", "--status", "cancelled"]).data.runs.map((r: { id: string }) => r.id)).toContain(id);
  });
});

describe("retry", () => {
  it("a failed run retried from its failed step: earlier steps do not run again", () => {
    run(["kv", "set", "fragile-lock", "taken"]);
    const failed = sluice(repo.dir, ["run", "fragile", "--json"], env);
    expect(failed.code).toBe(1);
    expect(failed.json.data.error.code).toBe("KV_VERSION_CONFLICT");
    const id = failed.json.data.id;
    // Free the lock, then retry: `first` stays done, `check` runs as attempt 2.
    const list = run(["kv", "list", "fragile-"]);
    expect(list.data.entries.map((e: { key: string }) => e.key)).toEqual(["fragile-first", "fragile-lock"]);
    sluice(repo.dir, ["kv", "set", "fragile-lock", "x", "--if-version", "1"], env);
    expect(run(["kv", "set", "fragile-lock", "y", "--if-version", "1"]).error.code).toBe("STATE_CONFLICT");
    expect(run(["runs", "retry", id]).data.status).toBe("failed");
    const events = run(["runs", "events", id]).data.events.filter((e: { type: string }) => e.type === "step_started");
    expect(events.map((e: { step: string; attempt: number }) => `${e.step}#${e.attempt}`)).toEqual(["first#1", "check#1", "check#2"]);
    expect(run(["kv", "get", "fragile-first"]).data.value).toBe(1);
    expect(run(["runs", "retry", run(["run", "waits", "--detach"]).data.id]).error.code).toBe("NOT_WAITING");
  });
});

describe("resources and inputs files", () => {
  it("an output over 64 KiB becomes a resource, readable with resources get", () => {
    writeFileSync(join(repo.dir, "inputs.yml"), "kb: 100\n");
    const r = run(["run", "big", "--inputs-file", "inputs.yml"]);
    const ref = r.data.steps[0].outputs.result;
    expect(ref).toMatchObject({ $resource: expect.stringMatching(/^res:\/\/sha256\/[0-9a-f]{64}$/), size: 100 * 1024, media_type: "text/plain; charset=utf-8" });
    const out = join(repo.dir, "big.json");
    expect(run(["resources", "get", ref.$resource, "-o", out]).data.size).toBe(100 * 1024);
    expect(readFileSync(out, "utf8")).toBe("x".repeat(100 * 1024));
    expect(run(["resources", "get", "res://sha256/" + "0".repeat(64)]).error.code).toBe("NOT_FOUND");
    expect(run(["run", "big", "--inputs-file", "missing.yml"]).error.code).toBe("USAGE");
  });

  it("a small output stays inline", () => {
    expect(run(["run", "big", "--input", "kb=1"]).data.steps[0].outputs.result).toBe("x".repeat(1024));
  });
});
