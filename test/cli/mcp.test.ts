/**
 * `sluice mcp` driven by the MCP SDK's own client over stdio, against the built CLI: an agent
 * lists flows, validates, starts a run (live and draft, with inputs), reads it and its events,
 * explains its gate, completes a callback and reads a resource; it has no way to approve.
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const FLOW = `
name: ship
on:
  manual:
    inputs:
      version: { type: string, required: true }
      count: { type: number, default: 1 }
steps:
  - id: notes
    function:
      input: { version: "\${{ inputs.version }}", count: "\${{ inputs.count }}" }
      code: |
        return { text: "release " + input.version + " x" + input.count };
  - id: bulk
    function: { code: "return 'y'.repeat(70 * 1024)" }
  - id: review
    wait:
      approval:
        title: Ship \${{ inputs.version }}?
        evidence: ["\${{ steps.notes.outputs.result.text }}"]
  - id: result
    wait: { callback: { schema: { type: object, required: [ok], properties: { ok: { type: boolean } } } } }
outputs:
  ok: \${{ steps.result.outputs.body.ok }}
`;

let repo: TestRepo;
let client: Client;
let env: Record<string, string>;

type Doc = { apiVersion: string; kind: string; ok: boolean; data: any; error: { code: string; message: string } | null };

async function call(name: string, args: Record<string, unknown> = {}): Promise<{ doc: Doc; isError: boolean }> {
  const r = (await client.callTool({ name, arguments: args })) as { content: { type: string; text: string }[]; structuredContent?: Doc; isError?: boolean };
  const doc = JSON.parse(r.content[0]!.text) as Doc;
  expect(r.structuredContent).toEqual(doc);
  return { doc, isError: r.isError === true };
}

beforeAll(async () => {
  repo = makeRepo({ ".github/flows/ship.yml": FLOW });
  repo.git("branch", "draft");
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_USER: "alice", LOG_LEVEL: "warn", PATH: process.env.PATH ?? "" };
  client = new Client({ name: "sluice-test", version: "1.0.0" });
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, "mcp"], cwd: repo.dir, env, stderr: "pipe" }));
});
afterAll(async () => {
  await client?.close();
  repo?.remove();
});

describe("sluice mcp", () => {
  it("offers the tools agents need, and none that decides a gate", async () => {
    const names = (await client.listTools()).tools.map((t) => t.name).sort();
    expect(names).toEqual(["complete_callback", "explain_gate", "get_resource", "get_run", "get_run_events", "list_flows", "list_runs", "start_run", "validate"]);
    expect(names.filter((n) => /approve|reject|decide/.test(n))).toEqual([]);
  });

  it("lists flows and validates", async () => {
    const flows = await call("list_flows");
    expect(flows.doc).toMatchObject({ kind: "FlowList", ok: true, data: { release: { kind: "live" }, flows: [{ name: "ship", valid: true }] } });
    const report = await call("validate");
    expect(report.doc).toMatchObject({ kind: "ValidationReport", ok: true, data: { valid: true } });
    const missing = await call("validate", { paths: ["no/such.yml"] });
    expect(missing.isError).toBe(true);
    expect(missing.doc.error?.code).toBe("USAGE");
  });

  it("starts a run with inputs, reads it, explains its gate, and cannot approve it; a human does", async () => {
    const bad = await call("start_run", { flow: "ship", inputs: { count: 2 } });
    expect(bad.isError).toBe(true);
    expect(bad.doc.error).toMatchObject({ code: "INPUT_INVALID", message: expect.stringContaining("'version' is required") });

    const started = await call("start_run", { flow: "ship", inputs: { version: "1.4.0", count: 2 } });
    expect(started.isError).toBe(false);
    expect(started.doc).toMatchObject({ kind: "Run", ok: true, data: { status: "waiting", inputs: { version: "1.4.0", count: 2 }, release: { kind: "live" }, gate: { step: "review" } } });
    const id = started.doc.data.id as string;
    // The agent is not the person at the keyboard: that person may approve what it asked for.
    expect(started.doc.data.trigger.actor).toBe("agent");

    expect((await call("get_run", { run: id })).doc.data).toMatchObject({ id, status: "waiting" });
    const events = (await call("get_run_events", { run: id })).doc;
    expect(events.kind).toBe("EventList");
    expect(events.data.events.map((e: { type: string }) => e.type)).toContain("gate_opened");
    const gate = (await call("explain_gate", { run: id })).doc;
    expect(gate.data.gates[0]).toMatchObject({ step: "review", title: "Ship 1.4.0?", evidence: ["release 1.4.0 x2"] });

    const runs = (await call("list_runs", { status: ["waiting"] })).doc;
    expect(runs.data.runs.map((r: { id: string }) => r.id)).toContain(id);

    // The big output became a resource the agent can read.
    const ref = started.doc.data.steps.find((s: { id: string }) => s.id === "bulk").outputs.result.$resource as string;
    expect(ref).toMatch(/^res:\/\/sha256\/[0-9a-f]{64}$/);
    const resource = (await call("get_resource", { ref })).doc;
    expect(resource).toMatchObject({ kind: "Resource", ok: true, data: { size: 70 * 1024 } });
    expect(resource.data.content).toBe("y".repeat(70 * 1024));

    // Approval is a human's, outside MCP.
    const approved = sluice(repo.dir, ["approve", id, "--as", "alice", "--json"], env);
    expect(approved.json.data.status).toBe("waiting");
    expect(approved.json.data.steps.find((s: { id: string }) => s.id === "result").status).toBe("waiting");

    const wrong = await call("complete_callback", { run: id, step: "result", body: { ok: "yes" } });
    expect(wrong.isError).toBe(true);
    expect(wrong.doc.error?.code).toBe("CALLBACK_INVALID");
    const done = await call("complete_callback", { run: id, step: "result", body: { ok: true } });
    expect(done.doc.data).toMatchObject({ status: "succeeded", outputs: { ok: true } });
    const again = await call("complete_callback", { run: id, step: "result", body: { ok: false } });
    expect(again.doc.data.notes).toEqual(["step result was already completed; the first body stands"]);
  });

  it("runs a draft from a branch", async () => {
    repo.git("checkout", "-q", "draft");
    repo.commit({ ".github/flows/ship.yml": FLOW.replace("Ship ", "Draft ") }, "draft change");
    repo.git("checkout", "-q", "main");
    const draft = await call("start_run", { flow: "ship", ref: "draft", inputs: { version: "2.0.0" } });
    expect(draft.doc.data).toMatchObject({ status: "waiting", release: { kind: "draft", ref: "draft" }, gate: { title: "Draft 2.0.0?" } });
  });

  it("an unknown run is a tool error with RUN_NOT_FOUND", async () => {
    const r = await call("get_run", { run: "nope" });
    expect(r.isError).toBe(true);
    expect(r.doc.error?.code).toBe("RUN_NOT_FOUND");
  });
});
