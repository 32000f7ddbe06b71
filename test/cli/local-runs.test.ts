/** The CLI in local mode, end to end: a real git repository, SQLite in .sluice/, real processes. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const GATED = `
name: gated
on:
  manual:
    inputs:
      n: { type: number, required: true }
      mode: { type: choice, options: [fast, safe], default: safe }
steps:
  - id: count
    kv: { incr: { key: counter, by: "\${{ inputs.n }}" } }
  - id: review
    wait:
      approval:
        title: Go on with \${{ inputs.n }}?
        evidence: ["\${{ steps.count.outputs.value }}"]
        approvers: { users: [bob, carol], min: 1 }
  - id: result
    wait:
      callback:
        timeout: 1h
        schema: { type: object, required: [ok], properties: { ok: { type: boolean } } }
outputs:
  total: \${{ steps.count.outputs.value }}
  ok: \${{ steps.result.outputs.body.ok }}
`;

let repo: TestRepo;
let env: Record<string, string>;

beforeAll(() => {
  repo = makeRepo({ ".github/flows/gated.yml": GATED });
  env = { SLUICE_HOME: join(repo.dir, ".state") };
});
afterAll(() => repo.remove());

const run = (args: string[], extra: Record<string, string> = {}) => sluice(repo.dir, args, { ...env, ...extra });

describe("a run with a gate and a callback", () => {
  let id: string;
  it("runs until the gate and exits 3 (waiting)", () => {
    const r = run(["run", "gated", "--input", "n=2", "--json"]);
    expect(r.code).toBe(3);
    expect(r.json).toMatchObject({ apiVersion: "sluice/v1", kind: "Run", ok: true, error: null });
    const data = r.json.data;
    id = data.id;
    expect(data.status).toBe("waiting");
    expect(data.release.kind).toBe("live");
    expect(data.inputs).toEqual({ n: 2, mode: "safe" });
    expect(data.steps.map((s: { id: string; status: string }) => [s.id, s.status])).toEqual([
      ["count", "succeeded"],
      ["review", "waiting"],
      ["result", "pending"],
    ]);
    expect(data.gate).toMatchObject({ step: "review", min: 1, approvals: [], approvers: { users: ["bob", "carol"] } });
  });

  it("refuses an approval from someone not listed, and from the trigger actor: journaled, nothing else changes", () => {
    const before = run(["runs", "events", id, "--json"]).json.data.events.length;
    const stranger = run(["approve", id, "--as", "mallory", "--json"]);
    expect(stranger.code).toBe(1);
    expect(stranger.json.error.code).toBe("APPROVAL_NOT_ELIGIBLE");
    const self = run(["approve", id, "--json"]);
    expect(self.json.error).toMatchObject({ code: "APPROVAL_NOT_ELIGIBLE" });
    expect(self.json.error.message).toMatch(/alice triggered this run/);
    const events = run(["runs", "events", id, "--json"]).json.data.events;
    expect(events.slice(before).map((e: { type: string; login: string; reason: string }) => [e.type, e.login, e.reason])).toEqual([
      ["approval_refused", "mallory", "not_eligible"],
      ["approval_refused", "alice", "self"],
    ]);
    expect(run(["runs", "show", id, "--json"]).json.data).toMatchObject({ status: "waiting", gate: { approvals: [] } });
  });

  it("gates explain says who may approve and the quorum", () => {
    const r = run(["gates", "explain", id, "--json"]);
    expect(r.code).toBe(0);
    expect(r.json.data.gates[0]).toMatchObject({ step: "review", quorum: "0/1", approvers: { users: ["bob", "carol"] } });
    const list = run(["gates", "list", "--json"]);
    expect(list.json.data.gates.map((g: { run: string }) => g.run)).toContain(id);
  });

  it("a stale digest is refused", () => {
    const r = run(["approve", id, "--as", "bob", "--digest", "0000000000", "--json"]);
    expect(r.json.error.code).toBe("APPROVAL_STALE");
  });

  it("an eligible approval continues the run to the callback wait", () => {
    const r = run(["approve", id, "--as", "bob", "--comment", "looks right", "--json"]);
    expect(r.code).toBe(3);
    expect(r.json.data.steps[1]).toMatchObject({ id: "review", status: "succeeded", outputs: { decision: "approved", comment: "looks right" } });
    expect(r.json.data.steps[2].status).toBe("waiting");
  });

  it("approving a run that is not at a gate is NOT_WAITING", () => {
    const r = run(["approve", id, "--as", "carol", "--json"]);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe("NOT_WAITING");
  });

  it("a callback body that fails its schema is refused and changes nothing", () => {
    const before = run(["runs", "events", id, "--json"]).json.data.events.length;
    const r = run(["callback", id, "result", "--body", '{"ok":"yes"}', "--json"]);
    expect(r.code).toBe(1);
    expect(r.json.error.code).toBe("CALLBACK_INVALID");
    expect(run(["runs", "events", id, "--json"]).json.data.events.length).toBe(before);
    // A body that is not JSON is the caller's mistake, like a bad flag: a usage error, exit 2.
    const notJson = run(["callback", id, "result", "--body", "not json", "--json"]);
    expect(notJson.code).toBe(2);
    expect(notJson.json.error).toMatchObject({ code: "USAGE", message: expect.stringContaining("--body is not JSON") });
  });

  it("a valid callback finishes the run; a second one is a no-op", () => {
    const r = run(["callback", id, "result", "--body", '{"ok":true}', "--json"]);
    expect(r.code).toBe(0);
    expect(r.json.data.status).toBe("succeeded");
    expect(r.json.data.outputs).toEqual({ total: 2, ok: true });
    const again = run(["callback", id, "result", "--body", '{"ok":false}', "--json"]);
    expect(again.code).toBe(0);
    expect(again.json.data.outputs.ok).toBe(true);
    expect(again.json.data.notes[0]).toMatch(/already completed/);
  });

  it("the journal records every event in order; kv shows the written value", () => {
    const events = run(["runs", "events", id, "--json"]).json.data.events.map((e: { type: string }) => e.type);
    expect(events).toEqual([
      "run_created", "run_started", "step_started", "step_succeeded", "gate_opened",
      "approval_refused", "approval_refused", "approval_refused", "approval_received",
      "step_succeeded", "wait_started", "callback_received", "step_succeeded", "run_completed",
    ]);
    expect(run(["kv", "get", "counter", "--json"]).json.data).toMatchObject({ key: "counter", value: 2, version: 1 });
  });
});

describe("bad input", () => {
  it("an unknown run is exit 4 with RUN_NOT_FOUND", () => {
    const r = run(["runs", "show", "nope", "--json"]);
    expect(r.code).toBe(4);
    expect(r.json).toMatchObject({ ok: false, error: { code: "RUN_NOT_FOUND" } });
    expect(run(["approve", "nope", "--as", "bob"]).code).toBe(4);
  });

  it("an input of the wrong type, a missing one and an unknown one are INPUT_INVALID, a usage error (exit 2); no run is created", () => {
    const before = run(["runs", "list", "--json"]).json.data.runs.length;
    const r = run(["run", "gated", "--input", "n=lots", "--input", "mode=reckless", "--input", "x=1", "--json"]);
    expect(r.code).toBe(2);
    expect(r.json.error.code).toBe("INPUT_INVALID");
    expect(r.json.error.details.problems).toHaveLength(3);
    const missing = run(["run", "gated", "--json"]);
    expect(missing.code).toBe(2);
    expect(missing.json.error.message).toMatch(/input 'n' is required/);
    expect(run(["runs", "list", "--json"]).json.data.runs.length).toBe(before);
  });

  it("an unknown flow is FLOW_NOT_FOUND (exit 4); an unknown flag is a usage error (exit 2)", () => {
    expect(run(["run", "nothing-here", "--json"]).json.error.code).toBe("FLOW_NOT_FOUND");
    expect(run(["run", "nothing-here"]).code).toBe(4);
    const r = run(["run", "gated", "--frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/frobnicate/);
  });

  it("outside a git repository is a clear error", () => {
    const r = sluice("/", ["runs", "list", "--json"], env);
    expect(r.json.error.code).toBe("NOT_A_REPOSITORY");
  });
});

describe("releases and drafts", () => {
  it("a branch is a draft, pinned to its SHA, with the default branch's config", () => {
    repo.git("checkout", "-q", "-b", "feature");
    const sha = repo.commit({ ".github/flows/draft-only.yml": "on: { manual: {} }\nsteps:\n  - id: a\n    kv: { get: counter }\n" }, "draft");
    repo.git("checkout", "-q", "main");
    expect(run(["run", "draft-only", "--json"]).json.error.code).toBe("FLOW_NOT_FOUND");
    const r = run(["run", "draft-only", "--ref", "feature", "--json"]);
    expect(r.code).toBe(0);
    expect(r.json.data.release).toEqual({ sha, ref: "feature", kind: "draft" });
    const flows = run(["flows", "list", "--ref", "feature", "--json"]);
    expect(flows.json.data.release.kind).toBe("draft");
    expect(flows.json.data.flows.map((f: { name: string }) => f.name).sort()).toEqual(["draft-only", "gated"]);
  });

  it("uncommitted flow changes are not run, and the run says so", () => {
    repo.write({ ".github/flows/gated.yml": GATED.replace("by: ", "by: 100 #") });
    const r = run(["run", "gated", "--input", "n=1", "--json"]);
    expect(r.json.data.notes[0]).toMatch(/uncommitted changes to \.github\/flows\/gated\.yml are not part of any release/);
    expect(r.json.data.steps[0].outputs.value).toBe(3);
    repo.git("checkout", "--", ".");
    expect(readFileSync(join(repo.dir, ".github/flows/gated.yml"), "utf8")).toBe(GATED);
  });
});
