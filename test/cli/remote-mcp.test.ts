/**
 * `sluice mcp --server URL` driven by the MCP SDK's own client over stdio, against the built CLI
 * and a real server on loopback (test/adapters/server/api-server.ts), with an agent's token made
 * by `sluice tokens create --agent`: the same tools, done by the server's API as the token's
 * login; and still no way to decide a gate (the API refuses an agent's token too).
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApiServer, type ApiServer } from "../adapters/server/api-server.js";
import { CLI, sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const FLOW = `
name: ship
on:
  manual:
    inputs:
      version: { type: string, required: true }
steps:
  - id: bulk
    function: { code: "return 'y'.repeat(70 * 1024)" }
  - id: review
    wait:
      approval:
        title: Ship \${{ inputs.version }}?
        approvers: { permission: write }
  - id: result
    wait: { callback: { schema: { type: object, required: [ok], properties: { ok: { type: boolean } } } } }
`;

type Doc = { apiVersion: string; kind: string; ok: boolean; data: any; error: { code: string; message: string } | null };

let repo: TestRepo;
let api: ApiServer;
let client: Client;
let agentToken: string;

async function call(name: string, args: Record<string, unknown> = {}): Promise<{ doc: Doc; isError: boolean }> {
  const r = (await client.callTool({ name, arguments: args })) as { content: { type: string; text: string }[]; isError?: boolean };
  return { doc: JSON.parse(r.content[0]!.text) as Doc, isError: r.isError === true };
}

beforeAll(async () => {
  repo = makeRepo({ ".github/flows/ship.yml": FLOW });
  repo.git("remote", "add", "origin", "https://github.com/acme/widgets.git");
  api = await startApiServer(repo.dir);
  // The operator makes the agent's token on the server's store, as on the server's machine.
  const made = sluice(api.dir, ["tokens", "create", "--agent", "--login", "ship-bot", "--repo", "acme/widgets", "--json"], { SLUICE_HOME: api.dir });
  expect(made.code, made.stderr).toBe(0);
  expect(made.json.data).toMatchObject({ login: "ship-bot", kind: "agent", repo: "acme/widgets" });
  agentToken = made.json.data.token;
  client = new Client({ name: "sluice-test", version: "1.0.0" });
  const env = { SLUICE_TOKEN: agentToken, LOG_LEVEL: "warn", PATH: process.env.PATH ?? "", SLUICE_MCP_ACTOR: "ignored" };
  await client.connect(new StdioClientTransport({ command: process.execPath, args: [CLI, "mcp", "--server", api.base], cwd: repo.dir, env, stderr: "pipe" }));
});

afterAll(async () => {
  await client?.close();
  await api?.close();
  repo?.remove();
});

describe("sluice mcp --server", () => {
  it("does what the local tools do, through the server's API, as the token's login", async () => {
    const flows = await call("list_flows");
    expect(flows.doc).toMatchObject({ kind: "FlowList", ok: true, data: { flows: [{ name: "ship" }] } });
    // validate checks the agent's own checkout.
    expect((await call("validate")).doc).toMatchObject({ kind: "ValidationReport", ok: true });

    const started = await call("start_run", { flow: "ship", inputs: { version: "1.0" } });
    expect(started.isError).toBe(false);
    expect(started.doc.data).toMatchObject({ status: "waiting", trigger: { actor: "ship-bot" }, gate: { step: "review" } });
    const id = started.doc.data.id as string;
    // The run is on the server, not in a local store.
    expect(await api.store.getRun(id)).toMatchObject({ repo: "acme/widgets", flow: "ship" });

    expect((await call("get_run", { run: id })).doc.data).toMatchObject({ id, status: "waiting" });
    expect((await call("get_run_events", { run: id })).doc.kind).toBe("EventList");
    expect((await call("explain_gate", { run: id })).doc.data.gates[0]).toMatchObject({ step: "review", title: "Ship 1.0?" });
    expect((await call("list_runs", { status: ["waiting"] })).doc.data.runs.map((r: { id: string }) => r.id)).toContain(id);
    const ref = started.doc.data.steps.find((s: { id: string }) => s.id === "bulk").outputs.result.$resource as string;
    // A repository's token reads a resource through the run it came from.
    const unnamed = await call("get_resource", { ref });
    expect([unnamed.isError, unnamed.doc.error?.code]).toEqual([true, "NOT_FOUND"]);
    expect(unnamed.doc.error?.message).toMatch(/name the run/);
    const resource = await call("get_resource", { ref, run: id });
    expect(resource.doc).toMatchObject({ kind: "Resource", ok: true, data: { size: 70 * 1024 } });
    expect(resource.doc.data.content).toBe("y".repeat(70 * 1024));

    // The agent's token cannot approve through the API either: refused and journaled.
    const r = await fetch(`${api.base}/api/v1/runs/${id}/approve`, { method: "POST", headers: { authorization: `Bearer ${agentToken}` } });
    expect(r.status).toBe(403);
    expect((await api.store.loadJournal(id)).map((s) => s.event.type)).toContain("approval_refused");

    // A person approves; the agent completes the callback through MCP.
    const alice = await api.token("alice", "acme/widgets");
    const approved = await fetch(`${api.base}/api/v1/runs/${id}/approve`, { method: "POST", headers: { authorization: `Bearer ${alice}` } });
    expect(approved.status).toBe(200);
    const wrong = await call("complete_callback", { run: id, step: "result", body: { ok: "yes" } });
    expect([wrong.isError, wrong.doc.error?.code]).toEqual([true, "CALLBACK_INVALID"]);
    const done = await call("complete_callback", { run: id, step: "result", body: { ok: true } });
    expect(done.doc.data).toMatchObject({ status: "succeeded" });
  }, 60_000);

  it("an unknown run is a tool error with RUN_NOT_FOUND", async () => {
    const r = await call("get_run", { run: "nope" });
    expect([r.isError, r.doc.error?.code]).toEqual([true, "RUN_NOT_FOUND"]);
  });
});
