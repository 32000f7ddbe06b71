/**
 * What the MCP tools do, as one interface: each call answers with the report the CLI prints for
 * the same command (the sluice/v1 envelope's kind, data and error). The local backend runs the
 * CLI's own command functions on the local store; the remote one (`sluice mcp --server`) asks
 * the server's API, as the CLI does with --server, and the tools stay as they are.
 *
 * There is no decision here on purpose: agents request, humans decide.
 */
import type { Local } from "../../app/local.js";
import type { Io, Report } from "../cli/output.js";
import type { Remote } from "../cli/remote.js";

export interface StartRunRequest {
  flow: string;
  inputs?: Record<string, unknown>;
  /** A branch, tag or commit: a draft unless it is the default branch's head. */
  ref?: string;
}

export interface SluiceBackend {
  listFlows(ref?: string): Promise<Report>;
  validate(paths: string[]): Promise<Report>;
  startRun(req: StartRunRequest): Promise<Report>;
  listRuns(opts: { flow?: string; status?: string[]; limit?: number }): Promise<Report>;
  getRun(id: string): Promise<Report>;
  getRunEvents(id: string): Promise<Report>;
  explainGate(id: string): Promise<Report>;
  completeCallback(id: string, step: string, body: unknown): Promise<Report>;
  /** `run`: the run whose output it is (a server asks for it from a token limited to one repository). */
  getResource(ref: string, run?: string): Promise<Report>;
}

/** The local store and checkout, through the CLI's command functions. */
export function localBackend(local: () => Promise<Local>, io: Io, actor: string): SluiceBackend {
  // Nothing may reach stdout: it carries the protocol. Progress is never printed (no terminal).
  const quiet: Io = { ...io, stdout: () => {}, isTTY: false, colour: false };
  const runtime = async () => (await local()).runtime();
  return {
    async listFlows(ref) {
      return (await import("../cli/data.js")).flowsList(await local(), ref);
    },
    async validate(paths) {
      return (await import("../cli/validate.js")).validateCommand(paths, { ...quiet, cwd: (await local()).root });
    },
    async startRun(req) {
      const { runCommand } = await import("../cli/runs.js");
      return runCommand(await local(), { flow: req.flow, ...(req.ref ? { ref: req.ref } : {}), inputs: [], inputValues: req.inputs ?? {}, detach: false, follow: false, json: true, as: actor }, quiet);
    },
    async listRuns(opts) {
      return (await import("../cli/runs-list.js")).runsList((await local()).store, opts, quiet);
    },
    async getRun(id) {
      return (await import("../cli/runs.js")).runsShow(await runtime(), id, quiet);
    },
    async getRunEvents(id) {
      return (await import("../cli/runs.js")).runsEvents(await runtime(), id);
    },
    async explainGate(id) {
      return (await import("../cli/runs.js")).gatesExplain(await runtime(), id, quiet);
    },
    async completeCallback(id, step, body) {
      return (await import("../cli/runs.js")).callbackCommand(await runtime(), id, step, JSON.stringify(body ?? {}), quiet);
    },
    async getResource(ref) {
      return (await import("../cli/data.js")).resourcesGet(await local(), ref, undefined);
    },
  };
}

/**
 * The server's API with the token in SLUICE_TOKEN: runs are started as the token's login (make
 * it an agent's token: `sluice tokens create --agent`). `validate` stays local: it checks the
 * checkout the agent works in, which the server does not have.
 */
export function remoteBackend(remote: Remote, local: SluiceBackend, io: Io): SluiceBackend {
  const quiet: Io = { ...io, stdout: () => {}, isTTY: false, colour: false };
  const repo = io.env.SLUICE_REPO;
  const q = (params: Record<string, string | undefined>) => {
    const s = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => !!e[1])).toString();
    return s ? `?${s}` : "";
  };
  const seg = encodeURIComponent;
  const call = async (method: string, path: string, command: string, sub?: string, body?: unknown) =>
    (await import("../cli/remote.js")).remoteCall(remote, quiet, { method, path, ...(body !== undefined ? { body } : {}) }, { command, ...(sub ? { sub } : {}) });
  return {
    listFlows: (ref) => call("GET", `/api/v1/flows${q({ repo, ref })}`, "flows", "list"),
    validate: (paths) => local.validate(paths),
    startRun: (req) => call("POST", "/api/v1/runs", "run", undefined, { flow: req.flow, inputs: req.inputs ?? {}, ...(req.ref ? { ref: req.ref } : {}), ...(repo ? { repo } : {}) }),
    listRuns: (opts) => call("GET", `/api/v1/runs${q({ flow: opts.flow, status: opts.status?.join(","), limit: opts.limit ? String(opts.limit) : undefined, repo })}`, "runs", "list"),
    getRun: (id) => call("GET", `/api/v1/runs/${seg(id)}`, "runs", "show"),
    getRunEvents: (id) => call("GET", `/api/v1/runs/${seg(id)}/events`, "runs", "events"),
    explainGate: (id) => call("GET", `/api/v1/runs/${seg(id)}/gates`, "gates", "explain"),
    completeCallback: (id, step, body) => call("POST", `/api/v1/runs/${seg(id)}/callbacks/${seg(step)}`, "callback", undefined, body ?? {}),
    async getResource(ref, run) {
      const hex = /^res:\/\/sha256\/([0-9a-f]{64})$/.exec(ref)?.[1];
      return call("GET", `/api/v1/resources/${hex ?? "-"}${q({ run })}`, "resources", "get");
    },
  };
}
