/**
 * What the MCP tools do, as one interface: each call answers with the report the CLI prints for
 * the same command (the sluice/v1 envelope's kind, data and error). The local backend runs the
 * CLI's own command functions on the local store; a backend for `--server` (the HTTP API) can
 * implement the same interface, and the tools stay as they are.
 *
 * There is no decision here on purpose: agents request, humans decide.
 */
import type { Local } from "../../app/local.js";
import type { Io, Report } from "../cli/output.js";

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
  getResource(ref: string): Promise<Report>;
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
