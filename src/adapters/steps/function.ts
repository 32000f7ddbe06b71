/**
 * The `function` step: JavaScript run in a QuickJS WebAssembly sandbox with no I/O — no require,
 * no fetch, no process, no timers — a time limit and a memory limit. Parameters:
 *   code         a function body; `input` holds the evaluated input; what it returns is `result`
 *   file_source  instead of `code`: the text of a module (`file`, read at the run's pinned SHA by
 *                the caller); its default export, or its `main` export, is called with the input
 *   input        any JSON value (default null)
 *   timeout      a duration (default: the step's timeout, else 10s; the smaller wins)
 *   memory_mb    the sandbox's memory limit (default 64)
 * Outputs `result` (the returned value as JSON; undefined becomes null, a returned promise is
 * awaited) and `logs` (what console.log and friends printed, capped).
 * Each call gets a fresh WebAssembly module, runtime and context: nothing survives between calls.
 */
import { newQuickJSWASMModule, type QuickJSContext, type QuickJSHandle, type QuickJSRuntime } from "quickjs-emscripten";
import { NonRetriableError, SluiceError } from "../../core/errors.js";
import type { StepContext, StepExecutor } from "../../ports/step-executor.js";
import { abortError } from "./deadline.js";
import { optDurationMs, optNumber, optString, paramError, type Params } from "./params.js";

const KIND = "function";
export const FUNCTION_DEFAULT_TIMEOUT_MS = 10_000;
export const FUNCTION_DEFAULT_MEMORY_MB = 64;
const MAX_MEMORY_MB = 1024;
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

type Source = { mode: "code"; text: string; filename: string } | { mode: "module"; text: string; filename: string };

interface Limits {
  timeoutMs: number;
  memoryBytes: number;
}

class Logs {
  readonly lines: string[] = [];
  private bytes = 0;
  private dropped = 0;

  add(level: string, text: string): void {
    const line = level === "log" || level === "info" ? text : `${level}: ${text}`;
    if (this.lines.length >= MAX_LOG_LINES || this.bytes + line.length > MAX_LOG_BYTES) {
      this.dropped++;
      return;
    }
    this.lines.push(line);
    this.bytes += line.length;
  }

  output(): string[] {
    return this.dropped === 0 ? [...this.lines] : [...this.lines, `… ${this.dropped} more log line(s) dropped`];
  }
}

export const functionExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx) {
    const source = sourceOf(params);
    const input = inputJson(params);
    const limits = limitsOf(params, ctx);
    if (ctx.signal.aborted) throw abortError(ctx.signal.reason);
    const logs = new Logs();
    const result = await runInSandbox(source, input, limits, ctx, logs);
    return { outputs: { result, logs: logs.output() } };
  },
};

function sourceOf(params: Params): Source {
  const code = params.code;
  const fileSource = params.file_source;
  const file = optString(KIND, params, "file");
  if (code !== undefined && code !== null && (fileSource !== undefined || file !== undefined)) {
    throw paramError(KIND, "code", "and 'file' exclude each other: give one");
  }
  if (code !== undefined && code !== null) {
    if (typeof code !== "string") throw paramError(KIND, "code", "must be a string: a JavaScript function body");
    return { mode: "code", text: code, filename: "function.js" };
  }
  if (fileSource !== undefined && fileSource !== null) {
    if (typeof fileSource !== "string") throw paramError(KIND, "file_source", "must be the module's text");
    return { mode: "module", text: fileSource, filename: file ?? "module.js" };
  }
  if (file !== undefined) throw paramError(KIND, "file", "was not read: its text must be passed as 'file_source'");
  throw paramError(KIND, "code", "or 'file' is required");
}

function inputJson(params: Params): string {
  try {
    return JSON.stringify(params.input ?? null) ?? "null";
  } catch (err) {
    throw paramError(KIND, "input", `is not JSON: ${(err as Error).message}`);
  }
}

function limitsOf(params: Params, ctx: StepContext): Limits {
  const own = optDurationMs(KIND, params, "timeout");
  const candidates = [own, ctx.timeoutMs].filter((t): t is number => typeof t === "number" && t > 0);
  const timeoutMs = candidates.length > 0 ? Math.min(...candidates) : FUNCTION_DEFAULT_TIMEOUT_MS;
  const memoryMb = optNumber(KIND, params, "memory_mb", { min: 1, max: MAX_MEMORY_MB }) ?? FUNCTION_DEFAULT_MEMORY_MB;
  return { timeoutMs, memoryBytes: Math.floor(memoryMb * 1024 * 1024) };
}

/** Why execution stopped from outside, if it did. */
type Stop = { why: "timeout" } | { why: "aborted" } | undefined;

async function runInSandbox(source: Source, input: string, limits: Limits, ctx: StepContext, logs: Logs): Promise<unknown> {
  const quickjs = await newQuickJSWASMModule();
  if (ctx.signal.aborted) throw abortError(ctx.signal.reason);
  const runtime = quickjs.newRuntime();
  const handles: QuickJSHandle[] = [];
  let vm: QuickJSContext | undefined;
  let stop: Stop;
  const own = <T extends QuickJSHandle>(h: T): T => {
    handles.push(h);
    return h;
  };
  try {
    runtime.setMemoryLimit(limits.memoryBytes);
    runtime.setMaxStackSize(MAX_STACK_BYTES);
    const deadline = Date.now() + limits.timeoutMs;
    runtime.setInterruptHandler(() => {
      if (ctx.signal.aborted) stop = { why: "aborted" };
      else if (Date.now() >= deadline) stop = { why: "timeout" };
      return stop !== undefined;
    });
    const context = runtime.newContext();
    vm = context;

    const fail = (error: QuickJSHandle): never => {
      throw sandboxError(context, error, stop, limits, ctx, logs);
    };
    const unwrap = (r: ReturnType<QuickJSContext["evalCode"]>): QuickJSHandle => {
      if (r.error) {
        own(r.error);
        return fail(r.error);
      }
      return own(r.value);
    };

    // The prelude: console → logs, and untouchable parse/serialise helpers.
    const log = own(
      context.newFunction("log", (levelH, textH) => {
        const level = context.getString(levelH);
        const text = context.getString(textH);
        logs.add(level, text);
        ctx.logger.debug("function console output", { step: ctx.stepId, level, text: text.slice(0, 1000) });
      }),
    );
    const preludeFn = unwrap(context.evalCode(PRELUDE, "<prelude>", { type: "global" }));
    const helpers = unwrap(context.callFunction(preludeFn, context.undefined, log));
    const parse = own(context.getProp(helpers, "parse"));
    const serialise = own(context.getProp(helpers, "serialise"));
    const inputH = unwrap(context.callFunction(parse, context.undefined, own(context.newString(input))));

    // The function to call.
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
          throw new NonRetriableError("SANDBOX_ERROR", `${source.filename}: the module exports neither a default function nor a function 'main'`, {
            file: source.filename,
          });
        }
        fn = main;
      }
    }

    const returned = unwrap(context.callFunction(fn, context.undefined, inputH));
    const value = settle(context, runtime, returned, own, fail);
    const text = context.getString(unwrap(context.callFunction(serialise, context.undefined, value)));
    if (text.startsWith("!")) {
      throw new NonRetriableError("SANDBOX_ERROR", `the function's result is not JSON: ${text.slice(1)}`, { logs: logs.output() });
    }
    return JSON.parse(text.slice(1)) as unknown;
  } catch (err) {
    if (err instanceof SluiceError) throw err;
    // The host's own limits (a RangeError from deep native recursion, a WebAssembly trap).
    if (stop?.why === "aborted") throw abortError(ctx.signal.reason);
    if (stop?.why === "timeout") throw timeoutError(limits, logs);
    const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (/out of memory|memory access out of bounds|Cannot enlarge memory/i.test(message)) throw memoryError(limits, logs);
    throw new NonRetriableError("SANDBOX_ERROR", `the sandbox failed: ${message}`, { logs: logs.output() });
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
      throw new NonRetriableError(
        "SANDBOX_ERROR",
        "the function returned a promise that never settles (the sandbox has no timers and no I/O to wait for)",
      );
    }
  }
  if (state.type === "rejected") {
    own(state.error);
    return fail(state.error);
  }
  if (state.notAPromise) return handle;
  return own(state.value);
}

function timeoutError(limits: Limits, logs: Logs): NonRetriableError {
  return new NonRetriableError("SANDBOX_TIMEOUT", `the function ran longer than its time limit of ${limits.timeoutMs} ms`, {
    timeout_ms: limits.timeoutMs,
    logs: logs.output(),
  });
}

function memoryError(limits: Limits, logs: Logs): NonRetriableError {
  const mb = Math.round((limits.memoryBytes / 1024 / 1024) * 100) / 100;
  return new NonRetriableError("SANDBOX_MEMORY", `the function used more than its memory limit of ${mb} MB`, {
    memory_mb: mb,
    logs: logs.output(),
  });
}

/** The error a JS exception in the sandbox stands for. */
function sandboxError(context: QuickJSContext, error: QuickJSHandle, stop: Stop, limits: Limits, ctx: StepContext, logs: Logs): SluiceError {
  let dumped: unknown;
  let dumpFailed = false;
  try {
    dumped = context.dump(error);
  } catch {
    dumpFailed = true; // an exception that cannot even be read: the runtime is out of memory
  }
  if (dumpFailed) return stop?.why === "aborted" ? abortError(ctx.signal.reason) : stop ? timeoutError(limits, logs) : memoryError(limits, logs);
  const e = (dumped !== null && typeof dumped === "object" ? dumped : {}) as { name?: unknown; message?: unknown; stack?: unknown };
  const name = typeof e.name === "string" ? e.name : undefined;
  const message = typeof e.message === "string" ? e.message : undefined;
  if (name === "InternalError" && message === "interrupted") {
    return stop?.why === "aborted" ? abortError(ctx.signal.reason) : timeoutError(limits, logs);
  }
  if (name === "InternalError" && (message === "out of memory" || message === "string too long" || message === "array too long")) {
    return memoryError(limits, logs);
  }

  if (name !== undefined && message !== undefined) {
    const stack = typeof e.stack === "string" ? e.stack.split("\n").map((l) => l.trim()).filter(Boolean) : [];
    const frame = stack.find((l) => !l.includes("<prelude>")) ?? "";
    // "at f (function.js:2:30)" or "at function.js:1:8": keep the location.
    const where = /\(([^()]*:\d+:\d+)\)$/.exec(frame)?.[1] ?? /^at (\S+:\d+:\d+)$/.exec(frame)?.[1] ?? "";
    const summary = `${name}: ${message}${where ? ` (${where})` : ""}`;
    return new NonRetriableError("SANDBOX_ERROR", summary, {
      name,
      message,
      stack: stack.slice(0, MAX_STACK_LINES).join("\n"),
      logs: logs.output(),
    });
  }
  let shown: string;
  try {
    shown = JSON.stringify(dumped) ?? String(dumped);
  } catch {
    shown = String(dumped);
  }
  return new NonRetriableError("SANDBOX_ERROR", `the function threw ${shown.slice(0, 500)}`, { thrown: dumped, logs: logs.output() });
}
