/**
 * The `function` step's sandbox, run in a worker thread (function.ts starts it and keeps one
 * warm): QuickJS compiled to WebAssembly, with no I/O — no require, no fetch, no process, no
 * timers. It takes one job at a time, posts the console output as it comes and ends the job
 * with one reply. The time limit is not kept here: the step's thread terminates this worker
 * when it passes, which stops any loop, native or not. Each job gets a fresh WebAssembly
 * module, runtime and context (the next module is made while the worker waits): nothing
 * survives between jobs.
 */
import { parentPort } from "node:worker_threads";
import { newQuickJSWASMModule, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime, type QuickJSWASMModule } from "quickjs-emscripten";

export type SandboxSource = { mode: "code" | "module"; text: string; filename: string };

export interface SandboxJob {
  source: SandboxSource;
  /** The input as JSON text. */
  input: string;
  memoryBytes: number;
}

export type SandboxReply =
  /** `line` is what `logs` keeps: the text, after `level: ` unless the level is log or info. */
  | { type: "log"; level: string; text: string; line: string }
  /** Log lines were dropped from here on (the cap was reached); `dropped` of the final reply counts them. */
  | { type: "dropping" }
  | { type: "result"; json: string; dropped: number }
  | { type: "error"; message: string; details: Record<string, unknown>; dropped: number }
  | { type: "memory"; dropped: number };

/** QuickJS's own stack limit: well below the host's, so deep recursion is a JS error, not a crash. */
const MAX_STACK_BYTES = 256 * 1024;
const MAX_LOG_LINES = 200;
const MAX_LOG_BYTES = 32 * 1024;
const MAX_STACK_LINES = 5;

/** Runs inside the sandbox before the user's code: a console that reports to the host, and a safe stringify. */
const PRELUDE = `(function (log) {
  var stringify = JSON.stringify;
  var parse = JSON.parse;
  function show(v) {
    if (typeof v === "string") return v;
    try { var t = stringify(v); return t === undefined ? String(v) : t; } catch (e) { return String(v); }
  }
  function writer(level) {
    return function () {
      var parts = [];
      for (var i = 0; i < arguments.length; i++) parts.push(show(arguments[i]));
      log(level, parts.join(" "));
    };
  }
  globalThis.console = { log: writer("log"), info: writer("info"), warn: writer("warn"), error: writer("error"), debug: writer("debug") };
  return {
    parse: parse,
    serialise: function (v) {
      if (typeof v === "function") return "!a function is not JSON";
      if (typeof v === "symbol") return "!a symbol is not JSON";
      if (typeof v === "bigint") return "!a bigint is not JSON";
      var t;
      try { t = stringify(v); } catch (e) { return "!" + (e && e.message ? e.message : String(e)); }
      return t === undefined ? "=null" : "=" + t;
    }
  };
})`;

/** How a job ended badly, before it becomes a reply. */
type Failure = { type: "error"; message: string; details: Record<string, unknown> } | { type: "memory" };

class JobFailed extends Error {
  constructor(readonly failure: Failure) {
    super(failure.type === "error" ? failure.message : "out of memory");
  }
}

const sandboxError = (message: string, details: Record<string, unknown> = {}): JobFailed => new JobFailed({ type: "error", message, details });

/** Console output: the kept lines go to the step's thread as they come; past the cap they are counted. */
class Console {
  private lines = 0;
  private bytes = 0;
  dropped = 0;

  constructor(private readonly post: (reply: SandboxReply) => void) {}

  add(level: string, text: string): void {
    const line = level === "log" || level === "info" ? text : `${level}: ${text}`;
    if (this.lines >= MAX_LOG_LINES || this.bytes + line.length > MAX_LOG_BYTES) {
      if (this.dropped++ === 0) this.post({ type: "dropping" });
      return;
    }
    this.lines++;
    this.bytes += line.length;
    this.post({ type: "log", level, text, line });
  }
}

let nextModule: Promise<QuickJSWASMModule> = newQuickJSWASMModule();

async function runJob(job: SandboxJob, console: Console): Promise<string> {
  const quickjs = await nextModule;
  nextModule = newQuickJSWASMModule();
  const runtime = quickjs.newRuntime();
  const handles: QuickJSHandle[] = [];
  let vm: QuickJSContext | undefined;
  const own = <T extends QuickJSHandle>(h: T): T => {
    handles.push(h);
    return h;
  };
  try {
    runtime.setMemoryLimit(job.memoryBytes);
    runtime.setMaxStackSize(MAX_STACK_BYTES);
    const context = runtime.newContext();
    vm = context;

    const fail = (error: QuickJSHandle): never => {
      throw thrown(context, error);
    };
    const unwrap = (r: ReturnType<QuickJSContext["evalCode"]>): QuickJSHandle => {
      if (r.error) {
        own(r.error);
        return fail(r.error);
      }
      return own(r.value);
    };

    // The prelude: console → the host, and untouchable parse/serialise helpers.
    const log = own(context.newFunction("log", (levelH, textH) => console.add(context.getString(levelH), context.getString(textH))));
    const preludeFn = unwrap(context.evalCode(PRELUDE, "<prelude>", { type: "global" }));
    const helpers = unwrap(context.callFunction(preludeFn, context.undefined, log));
    const parse = own(context.getProp(helpers, "parse"));
    const serialise = own(context.getProp(helpers, "serialise"));
    const inputH = unwrap(context.callFunction(parse, context.undefined, own(context.newString(job.input))));

    // The function to call.
    const { source } = job;
    let fn: QuickJSHandle;
    if (source.mode === "code") {
      fn = unwrap(context.evalCode(`(async function (input) {${source.text}\n})`, source.filename, { type: "global" }));
    } else {
      const ns = settle(context, runtime, unwrap(context.evalCode(source.text, source.filename, { type: "module" })), own, fail);
      const def = own(context.getProp(ns, "default"));
      if (context.typeof(def) === "function") fn = def;
      else {
        const main = own(context.getProp(ns, "main"));
        if (context.typeof(main) !== "function") {
          throw sandboxError(`${source.filename}: the module exports neither a default function nor a function 'main'`, { file: source.filename });
        }
        fn = main;
      }
    }

    const returned = unwrap(context.callFunction(fn, context.undefined, inputH));
    const value = settle(context, runtime, returned, own, fail);
    const text = context.getString(unwrap(context.callFunction(serialise, context.undefined, value)));
    if (text.startsWith("!")) throw sandboxError(`the function's result is not JSON: ${text.slice(1)}`);
    return text.slice(1);
  } catch (err) {
    if (err instanceof JobFailed) throw err;
    // The host's own limits (a RangeError from deep native recursion, a WebAssembly trap).
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (/out of memory|memory access out of bounds|Cannot enlarge memory/i.test(message)) throw new JobFailed({ type: "memory" });
    throw sandboxError(`the sandbox failed: ${message}`);
  } finally {
    for (const h of handles.reverse()) {
      try {
        if (h.alive) h.dispose();
      } catch {
        // A handle of a runtime that ran out of memory may not free cleanly; the module is discarded anyway.
      }
    }
    try {
      vm?.dispose();
      runtime.dispose();
    } catch {
      // As above: this WebAssembly module is never used again.
    }
  }
}

/** Runs pending jobs until `handle` (a promise or a plain value) settles; returns its value. */
function settle(
  context: QuickJSContext,
  runtime: QuickJSRuntime,
  handle: QuickJSHandle,
  own: <T extends QuickJSHandle>(h: T) => T,
  fail: (error: QuickJSHandle) => never,
): QuickJSHandle {
  let state = context.getPromiseState(handle);
  while (state.type === "pending") {
    const jobs = runtime.executePendingJobs();
    if (jobs.error) {
      own(jobs.error);
      fail(jobs.error);
    }
    const ran = jobs.value;
    state = context.getPromiseState(handle);
    if (state.type === "pending" && ran === 0) {
      throw sandboxError("the function returned a promise that never settles (the sandbox has no timers and no I/O to wait for)");
    }
  }
  if (state.type === "rejected") {
    own(state.error);
    return fail(state.error);
  }
  if (state.notAPromise) return handle;
  return own(state.value);
}

/** The failure a JS exception in the sandbox stands for. */
function thrown(context: QuickJSContext, error: QuickJSHandle): JobFailed {
  let dumped: unknown;
  try {
    dumped = context.dump(error);
  } catch {
    return new JobFailed({ type: "memory" }); // an exception that cannot even be read: the runtime is out of memory
  }
  const e = (dumped !== null && typeof dumped === "object" ? dumped : {}) as { name?: unknown; message?: unknown; stack?: unknown };
  const name = typeof e.name === "string" ? e.name : undefined;
  const message = typeof e.message === "string" ? e.message : undefined;
  if (name === "InternalError" && (message === "out of memory" || message === "string too long" || message === "array too long")) {
    return new JobFailed({ type: "memory" });
  }

  if (name !== undefined && message !== undefined) {
    const stack = typeof e.stack === "string" ? e.stack.split("\n").map((l) => l.trim()).filter(Boolean) : [];
    const frame = stack.find((l) => !l.includes("<prelude>")) ?? "";
    // "at f (function.js:2:30)" or "at function.js:1:8": keep the location.
    const where = /\(([^()]*:\d+:\d+)\)$/.exec(frame)?.[1] ?? /^at (\S+:\d+:\d+)$/.exec(frame)?.[1] ?? "";
    return sandboxError(`${name}: ${message}${where ? ` (${where})` : ""}`, { name, message, stack: stack.slice(0, MAX_STACK_LINES).join("\n") });
  }
  let shown: string;
  try {
    shown = JSON.stringify(dumped) ?? String(dumped);
  } catch {
    shown = String(dumped);
  }
  return sandboxError(`the function threw ${shown.slice(0, 500)}`, { thrown: dumped });
}

const port = parentPort;
if (port) {
  const post = (reply: SandboxReply): void => port.postMessage(reply);
  port.on("message", (job: SandboxJob) => {
    const console = new Console(post);
    runJob(job, console).then(
      (json) => post({ type: "result", json, dropped: console.dropped }),
      (err: unknown) => {
        const failure: Failure = err instanceof JobFailed ? err.failure : { type: "error", message: `the sandbox failed: ${String(err)}`, details: {} };
        post({ ...failure, dropped: console.dropped });
      },
    );
  });
}
