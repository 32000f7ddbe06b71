/**
 * `sluice mcp`: a Model Context Protocol server on stdio (@modelcontextprotocol/sdk), so agents
 * use Sluice natively: list flows, validate, start a run (live or draft), read runs and their
 * events, explain a gate, complete a callback, read a resource. No tool approves or rejects:
 * agents request, humans decide (`sluice approve`, GitHub).
 *
 * Each tool answers with the sluice/v1 envelope the CLI prints with --json for the same command,
 * as text and as structured content, and marks a failed command as a tool error.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { z } from "zod";
import type { Local } from "../../app/local.js";
import { VERSION } from "../cli/main.js";
import { EXIT, envelope, errorReport, type Io, type Report } from "../cli/output.js";
import type { Remote } from "../cli/remote.js";
import { localBackend, remoteBackend, type SluiceBackend } from "./backend.js";

/** Who a run started by an agent was triggered by: never the person who will approve it. */
export function mcpActor(env: NodeJS.ProcessEnv): string {
  return env.SLUICE_MCP_ACTOR || "agent";
}

const RUN_ID = z.string().min(1).describe("A run id, as start_run or list_runs return it");

type ToolResult = { content: { type: "text"; text: string }[]; structuredContent: Record<string, unknown>; isError?: boolean };

async function answer(call: () => Promise<Report>): Promise<ToolResult> {
  let report: Report;
  try {
    report = await call();
  } catch (e) {
    report = errorReport(e);
  }
  const doc = JSON.parse(envelope(report)) as Record<string, unknown>;
  // A run waiting at a gate is not an error: it is what the agent asked for, and a human's turn.
  const failed = !report.ok || (report.exitCode !== EXIT.ok && report.exitCode !== EXIT.waiting);
  return { content: [{ type: "text", text: JSON.stringify(doc) }], structuredContent: doc, ...(failed ? { isError: true } : {}) };
}

/** The server and its tools over a backend: the local store, or a server's API (--server). */
export function createMcpServer(backend: SluiceBackend): McpServer {
  const server = new McpServer(
    { name: "sluice", version: VERSION },
    {
      instructions:
        "Sluice runs flows from .github/flows/ (GitOps). Reads run freely; every write waits at a gate for a human. " +
        "Start runs with start_run (a ref other than the default branch's head is a draft), read them with get_run, and when one waits " +
        "at a gate call explain_gate and tell the person what to approve (sluice approve <run>); you cannot approve.",
    },
  );
  const readOnly = { readOnlyHint: true, openWorldHint: false };

  server.registerTool(
    "list_flows",
    {
      description: "The flows at a ref (default: the head of the default branch) with their triggers and next schedule times",
      inputSchema: { ref: z.string().optional().describe("A branch, tag or commit") },
      annotations: readOnly,
    },
    ({ ref }) => answer(() => backend.listFlows(ref)),
  );
  server.registerTool(
    "validate",
    {
      description: "Validate flow files and the config (default: .github/flows/ and .github/sluice.yml of the repository); diagnostics with file, line and code",
      inputSchema: { paths: z.array(z.string()).optional().describe("Files or folders, relative to the repository root") },
      annotations: readOnly,
    },
    ({ paths }) => answer(() => backend.validate(paths ?? [])),
  );
  server.registerTool(
    "start_run",
    {
      description:
        "Start a run of a flow and run it until it ends or waits (for a human at a gate, a callback, a long sleep). " +
        "Live from the default branch's head; with ref, a draft of that branch or commit (draft connections only). Returns the Run.",
      inputSchema: {
        flow: z.string().min(1).describe("The flow's name (or file stem)"),
        inputs: z.record(z.string(), z.unknown()).optional().describe("The flow's inputs, by name"),
        ref: z.string().optional().describe("A branch, tag or commit to run as a draft"),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: true },
    },
    ({ flow, inputs, ref }) => answer(() => backend.startRun({ flow, ...(inputs ? { inputs } : {}), ...(ref ? { ref } : {}) })),
  );
  server.registerTool(
    "list_runs",
    {
      description: "Recent runs, newest first",
      inputSchema: {
        flow: z.string().optional(),
        status: z.array(z.enum(["queued", "running", "waiting", "succeeded", "failed", "cancelled", "timed_out"])).optional(),
        limit: z.number().int().min(1).max(200).optional(),
      },
      annotations: readOnly,
    },
    ({ flow, status, limit }) => answer(() => backend.listRuns({ ...(flow ? { flow } : {}), ...(status ? { status } : {}), ...(limit ? { limit } : {}) })),
  );
  server.registerTool(
    "get_run",
    { description: "A run: status, steps with outputs and errors, its open gate, outputs", inputSchema: { run: RUN_ID }, annotations: readOnly },
    ({ run }) => answer(() => backend.getRun(run)),
  );
  server.registerTool(
    "get_run_events",
    { description: "A run's journal: every event, in order", inputSchema: { run: RUN_ID }, annotations: readOnly },
    ({ run }) => answer(() => backend.getRunEvents(run)),
  );
  server.registerTool(
    "explain_gate",
    {
      description: "Why a run is blocked: each open gate's summary and evidence, who may still approve, quorum, deadline, digest, refused and stale approvals",
      inputSchema: { run: RUN_ID },
      annotations: readOnly,
    },
    ({ run }) => answer(() => backend.explainGate(run)),
  );
  server.registerTool(
    "complete_callback",
    {
      description: "Complete a run's callback wait with a JSON body (checked against the step's schema; a second completion changes nothing), then continue the run",
      inputSchema: { run: RUN_ID, step: z.string().min(1).describe("The wait.callback step's id"), body: z.unknown().optional().describe("The callback's JSON body") },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
    },
    ({ run, step, body }) => answer(() => backend.completeCallback(run, step, body ?? {})),
  );
  server.registerTool(
    "get_resource",
    {
      description: "A large output kept as a resource (res://sha256/<hex>), as text",
      inputSchema: {
        ref: z.string().regex(/^res:\/\/sha256\/[0-9a-f]{64}$/).describe("res://sha256/<hex>"),
        run: RUN_ID.optional().describe("The run whose output it is: needed against a server with a token limited to one repository"),
      },
      annotations: readOnly,
    },
    ({ ref, run }) => answer(() => backend.getResource(ref, run)),
  );
  return server;
}

/** Serves MCP on stdin/stdout until the client closes the stream. */
export async function mcpCommand(local: () => Promise<Local>, io: Io, remote?: Remote): Promise<Report> {
  // Open the store now: a repository problem is reported before the client connects (remote
  // mode opens it only to validate, which checks the agent's checkout).
  if (!remote) await local();
  const backend = localBackend(local, io, mcpActor(io.env));
  const server = createMcpServer(remote ? remoteBackend(remote, backend, io) : backend);
  const transport = new StdioServerTransport();
  const ended = new Promise<void>((resolve) => {
    process.stdin.once("end", resolve);
    process.stdin.once("close", resolve);
  });
  await server.connect(transport);
  await ended;
  await server.close();
  // stdout belonged to the protocol: nothing more is printed there.
  return { kind: "Mcp", ok: true, data: { stopped: true }, exitCode: EXIT.ok, human: "" };
}
