/** Run commands of local mode: run, runs show/events/cancel/retry, approve, reject, gates, callback. */
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { parse as parseYaml } from "yaml";
import { loadFlow } from "../../app/releases.js";
import { publicEvent, runView, type RunView } from "../../app/run-view.js";
import type { Runtime } from "../../app/runtime.js";
import { cancelRun, completeCallback, decideGate, explainGate, openGates, retryRun } from "../../app/signals.js";
import type { Local } from "../../app/local.js";
import type { JournalEvent } from "../../core/engine/events.js";
import type { RunState } from "../../core/engine/state.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import { CONFIG_PATH } from "../../ports/flow-source.js";
import { isTerminal } from "../../ports/run-store.js";
import { MARK, duration, formatRun, gateLines, localTime, statusText } from "./format.js";
import { EXIT, paint, table, usage, type Io, type Report } from "./output.js";

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

interface Detailed {
  view: RunView;
  state: RunState;
}

async function detailOf(rt: Runtime, id: string): Promise<Detailed> {
  const { record, state } = await rt.load(id);
  return { view: runView(record, state), state };
}

/** What a waiting run waits for that a person can do something about, in words. */
function waitHints(d: Detailed, now: number): string[] {
  const s = Object.values(d.state.steps).find((x) => x.status === "waiting" && x.waitKind === "sleep" && typeof x.until === "number");
  if (d.view.status === "waiting" && s && typeof s.until === "number" && s.until > now) {
    return [`run ${d.view.id} sleeps at ${s.id} until ${localTime(s.until)}: start sluice worker to carry it on then (it runs timers, retries and schedules)`];
  }
  const backoff = Object.values(d.state.steps).find((x) => x.status === "pending" && x.lastFailure && !x.settled);
  if (d.view.status === "waiting" && backoff) return [`step ${backoff.id} retries later: start sluice worker to carry the run on`];
  return [];
}

function runReport(d: Detailed, io: Io, notes: string[] = [], now = Date.now()): Report {
  const run = d.view;
  const failed = ["failed", "cancelled", "timed_out"].includes(run.status);
  const open = openGates(d.state)[0];
  const gate = open ? explainGate(d.state, open, "local") : undefined;
  const hints = waitHints(d, now);
  return {
    kind: "Run",
    ok: !failed,
    data: { ...run, ...(notes.length ? { notes } : {}) },
    ...(failed && run.error ? { error: { code: run.error.code, message: run.error.message, details: { run: run.id } } } : {}),
    exitCode: exitForStatus(run.status),
    human: [...notes.map((n) => `note: ${n}`), formatRun(run, { colour: io.colour, ...(gate ? { gate } : {}) }), ...hints.map((h) => `\nhint: ${h}`)].join("\n"),
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
export async function driveRun(rt: Runtime, id: string, follow: boolean): Promise<void> {
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

/** A line per step transition: what `run` shows as it goes and what `sluice worker` logs. */
export function transitionLine(e: JournalEvent, state: RunState, colour: boolean | undefined): string | undefined {
  if (!("step" in e)) return undefined;
  const s = state.steps[e.step];
  const def = state.flow.steps.find((d) => d.id === e.step);
  if (!s || !def) return undefined;
  const p = paint(colour);
  switch (e.type) {
    case "step_started":
      return `${MARK.running} ${def.id} ${def.kind} started (attempt ${e.attempt})`;
    case "step_succeeded":
    case "step_failed":
    case "step_skipped": {
      const took = s.startedAt !== undefined && s.finishedAt !== undefined ? ` ${duration(s.finishedAt - s.startedAt)}` : "";
      const detail = e.type === "step_failed" ? ` ${p.red(`${e.error.code}: ${e.error.message}`)}${s.status === "failed" ? "" : " (will retry)"}` : "";
      return `${MARK[s.status] ?? "?"} ${def.id} ${def.kind} ${statusText(s.status, p)}${took}${detail}`;
    }
    case "gate_opened":
      return `${MARK.waiting} ${def.id} ${p.yellow("waiting for approval")}: ${e.gate.title}`;
    case "timer_started":
      return `${MARK.waiting} ${def.id} ${def.kind} ${def.kind === "sleep" ? `${p.yellow("sleeping")} until` : `${p.yellow("retrying")} at`} ${localTime(e.until)}`;
    case "wait_started":
      return `${MARK.waiting} ${def.id} ${p.yellow(`waiting for a ${e.wait}`)}${e.deadline !== null ? ` until ${localTime(e.deadline)}` : ""}`;
    default:
      return undefined;
  }
}

/** Live progress: a line per step transition (and a spinner on a terminal while a step works). */
function progress(rt: Runtime, io: Io, runId: string, spinner: boolean): () => void {
  const frames = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
  let current: string | undefined;
  let frame = 0;
  const spin = spinner
    ? setInterval(() => {
        if (current) io.stderr(`\r${frames[frame++ % frames.length]} ${current}`);
      }, 80)
    : undefined;
  const off = rt.onEvents((id, events, state) => {
    if (id !== runId) return;
    for (const e of events) {
      if (e.type === "step_started") {
        current = `${e.step} (attempt ${e.attempt})`;
        continue;
      }
      const line = transitionLine(e, state, io.colour);
      if (!line) continue;
      current = undefined;
      io.stderr(`${spinner ? "\r\x1b[K" : ""}${line}\n`);
    }
  });
  return () => {
    if (spin) clearInterval(spin);
    off();
    if (current && spinner) io.stderr("\r\x1b[K");
  };
}

export interface RunOptions {
  flow: string;
  ref?: string;
  inputs: string[];
  inputsFile?: string;
  /** Inputs as values (an agent's JSON); `--input` pairs are text, coerced by type all the same. */
  inputValues?: Record<string, unknown>;
  detach: boolean;
  follow: boolean;
  json: boolean;
  as?: string;
}

/** What `run` says about uncommitted changes: flows run from commits, and the config only from the default branch. */
async function uncommittedNotes(local: Local, flow: string): Promise<string[]> {
  const source = await local.source();
  const changed = await source.uncommittedFlowChanges();
  const notes: string[] = [];
  const flows = changed.filter((c) => c !== CONFIG_PATH);
  if (flows.length) {
    const branch = await source.currentBranch();
    const draftRef = branch && branch !== (await source.defaultBranch()) ? branch : "<branch>";
    notes.push(`uncommitted changes to ${flows.join(", ")} are not part of any release and do not run; commit them to a branch and run it as a draft: sluice run ${flow} --ref ${draftRef}`);
  }
  if (changed.includes(CONFIG_PATH)) {
    notes.push(`uncommitted changes to ${CONFIG_PATH} do not apply: every run, a draft too, uses the config committed on the default branch; commit it there to change connections or policy`);
  }
  return notes;
}

export async function runCommand(local: Local, opts: RunOptions, io: Io): Promise<Report> {
  const rt = await local.runtime();
  const given = { ...parseInputs(opts.inputs, opts.inputsFile, io.cwd), ...opts.inputValues };
  const [notes, { flow, config, release }] = await Promise.all([uncommittedNotes(local, opts.flow), loadFlow(await local.source(), opts.flow, opts.ref)]);
  const inputs = resolveInputs(flow, given);
  const id = await rt.createRun({ flow, config, release, repo: await local.repo(), inputs, trigger: { type: "manual", actor: actor(opts.as, io.env) } });
  if (opts.detach) {
    const d = await detailOf(rt, id);
    return { ...runReport(d, io, notes), exitCode: EXIT.ok, human: `run ${id} queued: a worker (sluice worker) will run it` };
  }
  let stop = () => {};
  if (opts.follow && opts.json) {
    stop = rt.onEvents((runId, events) => {
      if (runId === id) for (const e of events) io.stdout(JSON.stringify({ apiVersion: "sluice/v1", kind: "RunEvent", run: id, event: e }) + "\n");
    });
  } else if ((io.isTTY || opts.follow) && !opts.json) {
    // The id first: a follower who stops watching (Ctrl-C) still knows which run to look at.
    if (opts.follow) io.stdout(`run ${id}  ${flow.name}  ${release.kind} ${release.ref} @ ${release.sha.slice(0, 7)}\n`);
    for (const n of notes) io.stderr(`note: ${n}\n`);
    notes.length = 0;
    stop = progress(rt, io, id, io.isTTY);
  }
  try {
    await driveRun(rt, id, opts.follow);
  } finally {
    stop();
  }
  return runReport(await detailOf(rt, id), io, notes, rt.now());
}

export async function runsShow(rt: Runtime, id: string, io: Io): Promise<Report> {
  return runReport(await detailOf(rt, id), io, [], rt.now());
}

/** An event in a line: its facts, with times as local times. */
function describeEvent(e: JournalEvent): string {
  if (e.type === "run_created") return `${e.flow.name} @ ${e.release.sha.slice(0, 7)} by ${e.trigger.actor}`;
  const { type: _type, at: _at, ...rest } = e as JournalEvent & Record<string, unknown>;
  for (const key of ["until", "wake_at", "deadline"]) {
    if (typeof rest[key] === "number") rest[key] = localTime(rest[key] as number);
  }
  return JSON.stringify(rest).slice(0, 160);
}

export async function runsEvents(rt: Runtime, id: string): Promise<Report> {
  await rt.load(id);
  const events = await rt.store.loadJournal(id);
  const data = events.map((s) => ({ seq: s.seq, ...publicEvent(s.event), at: new Date(s.event.at).toISOString() }));
  return {
    kind: "EventList",
    ok: true,
    data: { run: id, events: data },
    exitCode: EXIT.ok,
    human: table(events.map((s) => [String(s.seq), localTime(s.event.at), s.event.type, describeEvent(publicEvent(s.event))])),
  };
}

export async function runsCancel(rt: Runtime, id: string, by: string, io: Io): Promise<Report> {
  await cancelRun(rt, id, by);
  // The cancel is what was asked for: done is success (SPEC §6), whatever the run's status says.
  const { error: _runError, ...report } = runReport(await detailOf(rt, id), io, [], rt.now());
  return { ...report, ok: true, exitCode: EXIT.ok };
}

export async function runsRetry(rt: Runtime, id: string, by: string, io: Io): Promise<Report> {
  await retryRun(rt, id, by);
  await driveRun(rt, id, false);
  return runReport(await detailOf(rt, id), io, [], rt.now());
}

export async function decideCommand(
  rt: Runtime,
  id: string,
  decision: "approve" | "reject",
  opts: { step?: string; as: string; comment?: string; digest?: string },
  io: Io,
): Promise<Report> {
  await decideGate(rt, id, {
    login: opts.as,
    via: "cli",
    decision,
    ...(opts.step ? { step: opts.step } : {}),
    ...(opts.comment ? { comment: opts.comment } : {}),
    ...(opts.digest ? { digest: opts.digest } : {}),
  });
  await driveRun(rt, id, false);
  return runReport(await detailOf(rt, id), io, [], rt.now());
}

/** The open gates of waiting runs (of one repository, when given). */
export async function gatesList(rt: Runtime, repo?: string): Promise<Report> {
  const waiting = await rt.store.listRuns({ status: ["waiting"], limit: 200, ...(repo ? { repo } : {}) });
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
    human: gates.length ? table([["run", "flow", "step", "quorum", "deadline", "title"], ...gates.map((g) => [g.run, g.flow, g.step, g.quorum, g.deadline ? localTime(g.deadline) : "none", g.title])]) : "no open gates",
  };
}

export async function gatesExplain(rt: Runtime, id: string, io: Io): Promise<Report> {
  const { record, state } = await rt.load(id);
  const gates = openGates(state).map((s) => explainGate(state, s, rt.mode));
  const p = paint(io.colour);
  const lines: string[] = [];
  if (gates.length === 0) {
    lines.push(`run ${id} has no open gate (status ${record.status})`);
    const waitingStep = Object.values(state.steps).find((s) => s.status === "waiting");
    if (waitingStep) lines.push(`it waits at ${waitingStep.id} for a ${waitingStep.waitKind}${typeof waitingStep.until === "number" ? ` until ${localTime(waitingStep.until)}` : ""}`);
  }
  for (const g of gates) lines.push(...gateLines(id, g, p, "--as <login> "));
  return { kind: "GateExplanation", ok: true, data: { run: id, status: record.status, gates }, exitCode: EXIT.ok, human: lines.join("\n") };
}

export async function callbackCommand(rt: Runtime, id: string, step: string, body: string | undefined, io: Io): Promise<Report> {
  let parsed: unknown = {};
  if (body !== undefined) {
    try {
      parsed = JSON.parse(body);
    } catch (e) {
      throw usage(`--body is not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const result = await completeCallback(rt, id, step, parsed);
  await driveRun(rt, id, false);
  return runReport(await detailOf(rt, id), io, result.duplicate ? [`step ${step} was already completed; the first body stands`] : [], rt.now());
}
