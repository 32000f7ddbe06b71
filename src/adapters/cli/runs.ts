/** Run commands of local mode: run, runs *, approve, reject, gates, callback. */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { parse as parseYaml } from "yaml";
import { loadRelease, pickFlow } from "../../app/releases.js";
import { publicEvent, runSummary, runView, type RunView } from "../../app/run-view.js";
import type { Runtime } from "../../app/runtime.js";
import { cancelRun, completeCallback, decideGate, explainGate, openGates, retryRun } from "../../app/signals.js";
import type { JournalEvent } from "../../core/engine/events.js";
import { SluiceError } from "../../core/errors.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import type { Local } from "../../app/local.js";
import { isTerminal, type RunStatus } from "../../ports/run-store.js";
import { MARK, duration, formatRun } from "./format.js";
import { EXIT, table, usage, type Io, type Report } from "./output.js";

/** The person at the keyboard: --as, else SLUICE_USER, else the operating-system user. */
export function actor(as: string | undefined, env: NodeJS.ProcessEnv): string {
  return as ?? env.SLUICE_USER ?? (() => {
    try {
      return userInfo().username;
    } catch {
      return "unknown";
    }
  })();
}

export function exitForStatus(status: string): number {
  switch (status) {
    case "succeeded":
      return EXIT.ok;
    case "waiting":
    case "queued":
    case "running":
      return EXIT.waiting;
    default:
      return EXIT.failed;
  }
}

export async function viewOf(rt: Runtime, id: string): Promise<RunView> {
  const { record, state } = await rt.load(id);
  return runView(record, state);
}

function runReport(run: RunView, notes: string[] = []): Report {
  const failed = ["failed", "cancelled", "timed_out"].includes(run.status);
  return {
    kind: "Run",
    ok: !failed,
    data: { ...run, ...(notes.length ? { notes } : {}) },
    ...(failed && run.error ? { error: { code: run.error.code, message: run.error.message, details: { run: run.id } } } : {}),
    exitCode: exitForStatus(run.status),
    human: [...notes.map((n) => `note: ${n}`), formatRun(run)].join("\n"),
  };
}

/** Parses `k=v` pairs; values that look like JSON literals stay strings (inputs are coerced by type). */
export function parseInputs(pairs: string[], file: string | undefined, cwd: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (file) {
    let data: unknown;
    try {
      data = parseYaml(readFileSync(`${file.startsWith("/") ? "" : cwd + "/"}${file}`, "utf8"));
    } catch (e) {
      throw usage(`cannot read inputs file ${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (data === null || typeof data !== "object" || Array.isArray(data)) throw usage(`inputs file ${file} must hold a mapping of input names to values`);
    Object.assign(out, data);
  }
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw usage(`--input takes name=value, got '${pair}'`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

const FOREGROUND_HORIZON_MS = 30_000;

/**
 * Drives a run in this process: through sleeps and retry backoffs that fall due soon (or any,
 * with follow), and back when it ends or waits for a person or a callback.
 */
async function drive(rt: Runtime, id: string, follow: boolean): Promise<void> {
  while (true) {
    // Another process (a worker) holds the run: give it a moment rather than spinning.
    if (!(await rt.advance(id))) await new Promise((r) => setTimeout(r, 100));
    const record = await rt.store.getRun(id);
    if (!record || record.wakeAt === null || isTerminal(record.status)) return;
    const delay = record.wakeAt - rt.now();
    if (!follow && delay > FOREGROUND_HORIZON_MS) return;
    await new Promise((r) => setTimeout(r, Math.max(0, Math.min(delay, 60_000))));
  }
}

/** Live progress on a terminal: a line per finished step, a spinner while one works. */
function progress(rt: Runtime, io: Io, runId: string): () => void {
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let current: string | undefined;
  let frame = 0;
  const spin = setInterval(() => {
    if (current) io.stderr(`\r${frames[frame++ % frames.length]} ${current}`);
  }, 80);
  const off = rt.onEvents((id, events, state) => {
    if (id !== runId) return;
    for (const e of events) {
      if (e.type === "step_started") current = `${e.step} (attempt ${e.attempt})`;
      if (e.type === "step_succeeded" || e.type === "step_failed" || e.type === "step_skipped" || e.type === "gate_opened" || e.type === "timer_started" || e.type === "wait_started") {
        const s = state.steps[e.step];
        const def = state.flow.steps.find((d) => d.id === e.step);
        if (!s || !def) continue;
        current = undefined;
        const took = s.startedAt !== undefined && s.finishedAt !== undefined ? duration(s.finishedAt - s.startedAt) : "";
        const detail = e.type === "step_failed" ? ` ${e.error.code}: ${e.error.message}` : "";
        io.stderr(`\r\x1b[K${MARK[s.status] ?? "?"} ${def.id} ${def.kind} ${s.status} ${took}${detail}\n`);
      }
    }
  });
  return () => {
    clearInterval(spin);
    off();
    if (current) io.stderr("\r\x1b[K");
  };
}

export interface RunOptions {
  flow: string;
  ref?: string;
  inputs: string[];
  inputsFile?: string;
  detach: boolean;
  follow: boolean;
  json: boolean;
  as?: string;
}

export async function runCommand(local: Local, opts: RunOptions, io: Io): Promise<Report> {
  const rt = local.runtime;
  const notes: string[] = [];
  const changed = await local.source.uncommittedFlowChanges();
  if (changed.length) {
    const branch = await local.source.currentBranch();
    notes.push(
      `uncommitted changes to ${changed.join(", ")} are not part of any release and do not run; commit them to a branch and run it as a draft: sluice run ${opts.flow} --ref ${branch && branch !== (await local.source.defaultBranch()) ? branch : "<branch>"}`,
    );
  }
  const loaded = await loadRelease(local.source, opts.ref);
  const flow = pickFlow(loaded, opts.flow);
  const inputs = resolveInputs(flow, parseInputs(opts.inputs, opts.inputsFile, io.cwd));
  const id = await rt.createRun({
    flow,
    config: loaded.config,
    release: loaded.release,
    repo: local.source.repo,
    inputs,
    trigger: { type: "manual", actor: actor(opts.as, io.env) },
  });
  if (opts.detach) {
    const run = await viewOf(rt, id);
    return { ...runReport(run, notes), exitCode: EXIT.ok, human: `run ${id} queued: a worker (sluice worker) will run it` };
  }
  let stop = () => {};
  if (opts.follow && opts.json) {
    const off = rt.onEvents((runId, events) => {
      if (runId === id) for (const e of events) io.stdout(JSON.stringify({ apiVersion: "sluice/v1", kind: "RunEvent", run: id, event: e }) + "\n");
    });
    stop = off;
  } else if (io.isTTY && !opts.json) {
    for (const n of notes) io.stderr(`note: ${n}\n`);
    notes.length = 0;
    stop = progress(rt, io, id);
  }
  try {
    await drive(rt, id, opts.follow);
  } finally {
    stop();
  }
  const run = await viewOf(rt, id);
  return runReport(run, notes);
}

export async function runsList(rt: Runtime, opts: { flow?: string; status?: string; limit?: number }): Promise<Report> {
  const statuses = opts.status?.split(",") as RunStatus[] | undefined;
  const runs = await rt.store.listRuns({ ...(opts.flow ? { flow: opts.flow } : {}), ...(statuses ? { status: statuses } : {}), limit: opts.limit ?? 20 });
  const data = runs.map(runSummary);
  return {
    kind: "RunList",
    ok: true,
    data: { runs: data },
    exitCode: EXIT.ok,
    human: data.length ? table([["id", "flow", "status", "release", "created"], ...data.map((r) => [r.id, r.flow, r.status, `${r.release.kind} ${r.release.sha.slice(0, 7)}`, r.created_at])]) : "no runs",
  };
}

export async function runsShow(rt: Runtime, id: string): Promise<Report> {
  return runReport(await viewOf(rt, id));
}

export async function runsEvents(rt: Runtime, id: string): Promise<Report> {
  await rt.load(id);
  const events = await rt.store.loadJournal(id);
  const data = events.map((s) => ({ seq: s.seq, ...publicEvent(s.event), at: new Date(s.event.at).toISOString() }));
  const describe = (e: JournalEvent): string => {
    const { type, at: _at, ...rest } = e;
    if (type === "run_created") return `${e.flow.name} @ ${e.release.sha.slice(0, 7)} by ${e.trigger.actor}`;
    return JSON.stringify(rest).slice(0, 160);
  };
  return {
    kind: "EventList",
    ok: true,
    data: { run: id, events: data },
    exitCode: EXIT.ok,
    human: table(events.map((s) => [String(s.seq), new Date(s.event.at).toISOString(), s.event.type, describe(s.event)])),
  };
}

export async function runsCancel(rt: Runtime, id: string, by: string): Promise<Report> {
  await cancelRun(rt, id, by);
  return runReport(await viewOf(rt, id));
}

export async function runsRetry(rt: Runtime, id: string, by: string): Promise<Report> {
  await retryRun(rt, id, by);
  await drive(rt, id, false);
  return runReport(await viewOf(rt, id));
}

export async function decideCommand(
  rt: Runtime,
  id: string,
  decision: "approve" | "reject",
  opts: { step?: string; as: string; comment?: string; digest?: string },
): Promise<Report> {
  await decideGate(rt, id, {
    login: opts.as,
    via: "cli",
    decision,
    ...(opts.step ? { step: opts.step } : {}),
    ...(opts.comment ? { comment: opts.comment } : {}),
    ...(opts.digest ? { digest: opts.digest } : {}),
  });
  await drive(rt, id, false);
  return runReport(await viewOf(rt, id));
}

export async function gatesList(rt: Runtime): Promise<Report> {
  const waiting = await rt.store.listRuns({ status: ["waiting"], limit: 200 });
  const gates = [];
  for (const r of waiting) {
    const { state } = await rt.load(r.id);
    for (const s of openGates(state)) gates.push({ run: r.id, flow: r.flow, ...explainGate(state, s, rt.mode) });
  }
  return {
    kind: "GateList",
    ok: true,
    data: { gates },
    exitCode: EXIT.ok,
    human: gates.length ? table([["run", "flow", "step", "quorum", "title"], ...gates.map((g) => [g.run, g.flow, g.step, g.quorum, g.title])]) : "no open gates",
  };
}

export async function gatesExplain(rt: Runtime, id: string): Promise<Report> {
  const { record, state } = await rt.load(id);
  const gates = openGates(state).map((s) => explainGate(state, s, rt.mode));
  const lines: string[] = [];
  if (gates.length === 0) {
    lines.push(`run ${id} has no open gate (status ${record.status})`);
    const waitingStep = Object.values(state.steps).find((s) => s.status === "waiting");
    if (waitingStep) lines.push(`it waits at ${waitingStep.id} for a ${waitingStep.waitKind}${waitingStep.until ? ` until ${new Date(waitingStep.until).toISOString()}` : ""}`);
  }
  for (const g of gates) {
    const who = [g.approvers.users.length ? g.approvers.users.join(", ") : "", g.approvers.teams.length ? `members of ${g.approvers.teams.join(", ")}` : "", g.approvers.permission ? `anyone with ${g.approvers.permission} permission` : ""].filter(Boolean).join(" or ");
    lines.push(
      `gate at ${g.step} (${g.kind}): ${g.title}`,
      `  who may approve: ${who}`,
      `  quorum: ${g.quorum}${g.approvals.length ? ` (${g.approvals.map((a) => `${a.login} via ${a.via}`).join(", ")})` : ""}`,
      `  deadline: ${g.deadline ?? "none"}`,
      `  digest: ${g.digest}`,
      ...(g.stale_approvals.length ? [`  stale approvals (the evidence changed since): ${g.stale_approvals.map((a) => a.login).join(", ")}`] : []),
      ...g.refused.map((r) => `  refused: ${r.decision} by ${r.login} via ${r.via} (${r.reason}): ${r.message}`),
      ...g.notes.map((n) => `  note: ${n}`),
    );
  }
  return { kind: "GateExplanation", ok: true, data: { run: id, status: record.status, gates }, exitCode: EXIT.ok, human: lines.join("\n") };
}

export async function callbackCommand(rt: Runtime, id: string, step: string, body: string | undefined): Promise<Report> {
  let parsed: unknown = {};
  if (body !== undefined) {
    try {
      parsed = JSON.parse(body);
    } catch (e) {
      throw new SluiceError("CALLBACK_INVALID", `--body is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const result = await completeCallback(rt, id, step, parsed);
  await drive(rt, id, false);
  return runReport(await viewOf(rt, id), result.duplicate ? [`step ${step} was already completed; the first body stands`] : []);
}
