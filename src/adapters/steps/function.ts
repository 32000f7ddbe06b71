/**
 * The `function` step: JavaScript run in a QuickJS WebAssembly sandbox with no I/O — no require,
 * no fetch, no process, no timers — a time limit and a memory limit. Parameters:
 *   code         a function body; `input` holds the evaluated input; what it returns is `result`
 *   file_source  instead of `code`: the text of a module (`file`, read at the run's pinned SHA by
 *                the caller); its default export, or its `main` export, is called with the input
 *   input        any JSON value (default null)
 *   timeout      a duration (default: the step's timeout, else 10s; the smaller wins)
 *   memory_mb    the sandbox's memory limit in MiB (default 64)
 * Outputs `result` (the returned value as JSON; undefined becomes null, a returned promise is
 * awaited) and `logs` (what console.log and friends printed, capped).
 *
 * The sandbox runs in a worker thread (function-worker.ts), off the event loop: a busy function
 * does not hold up webhooks, callbacks or other runs. The server caps both limits
 * (SLUICE_FUNCTION_MAX_TIMEOUT, default 30s; SLUICE_FUNCTION_MAX_MEMORY_MB, default 128): a flow
 * may ask for less, never for more (asking for more gets the cap, and a warning in the log).
 * When the time limit passes, or the step is aborted, the worker is terminated, which stops any
 * code, whether or not QuickJS would have stopped it. One worker is kept warm between steps; a
 * step that ends badly takes its worker down with it.
 */
import { Worker } from "node:worker_threads";
import { NonRetriableError, SluiceError, assertNever } from "../../core/errors.js";
import { isDuration, parseDuration } from "../../core/flow/duration.js";
import type { Logger, StepContext, StepExecutor } from "../../ports/step-executor.js";
import { abortError } from "./deadline.js";
import type { SandboxJob, SandboxReply, SandboxSource } from "./function-worker.js";
import { optDurationMs, optNumber, optString, paramError, type Params } from "./params.js";

const KIND = "function";
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MEMORY_MB = 64;
/** The bounds of the server's caps themselves (a timer of more than 24 days would fire at once). */
const MAX_CAP_TIMEOUT_MS = 86_400_000;
const MAX_CAP_MEMORY_MB = 1024;

/** The server's limits for every function step; a flow's `timeout` and `memory_mb` may only lower them. */
export interface FunctionCaps {
  timeoutMs: number;
  memoryMb: number;
}

export const DEFAULT_FUNCTION_CAPS: FunctionCaps = { timeoutMs: 30_000, memoryMb: 128 };

/** The caps from SLUICE_FUNCTION_MAX_TIMEOUT and SLUICE_FUNCTION_MAX_MEMORY_MB; ENV_INVALID names each bad one. */
export function functionCapsFromEnv(env: NodeJS.ProcessEnv): FunctionCaps {
  const problems: string[] = [];
  const caps = { ...DEFAULT_FUNCTION_CAPS };
  const timeout = env.SLUICE_FUNCTION_MAX_TIMEOUT?.trim();
  if (timeout) {
    const ms = isDuration(timeout) ? parseDuration(timeout) : NaN;
    if (ms >= 1 && ms <= MAX_CAP_TIMEOUT_MS) caps.timeoutMs = ms;
    else problems.push(`SLUICE_FUNCTION_MAX_TIMEOUT must be a duration from 1ms to 24h (such as 30s), not '${env.SLUICE_FUNCTION_MAX_TIMEOUT}'`);
  }
  const memory = env.SLUICE_FUNCTION_MAX_MEMORY_MB?.trim();
  if (memory) {
    const mb = /^[0-9]+$/.test(memory) ? Number(memory) : NaN;
    if (mb >= 1 && mb <= MAX_CAP_MEMORY_MB) caps.memoryMb = mb;
    else problems.push(`SLUICE_FUNCTION_MAX_MEMORY_MB must be a whole number of MiB from 1 to ${MAX_CAP_MEMORY_MB}, not '${env.SLUICE_FUNCTION_MAX_MEMORY_MB}'`);
  }
  if (problems.length) throw new SluiceError("ENV_INVALID", `the environment is invalid: ${problems.join("; ")}`, { problems });
  return caps;
}

interface Limits {
  timeoutMs: number;
  memoryMb: number;
  /** Which limits are the server's cap, lower than what the flow asked for (or its default). */
  capped: { timeout: boolean; memory: boolean };
}

/** The console output of one step, as the worker reports it. */
class Logs {
  readonly lines: string[] = [];
  /** How many lines the worker dropped past its cap: "some" until it says, if it never does. */
  dropped: number | "some" = 0;

  output(): string[] {
    if (this.dropped === 0) return [...this.lines];
    return [...this.lines, this.dropped === "some" ? "… more log lines dropped" : `… ${this.dropped} more log line(s) dropped`];
  }
}

export function createFunctionExecutor(caps: FunctionCaps = DEFAULT_FUNCTION_CAPS): StepExecutor {
  const workers = new SandboxWorkers();
  return {
    kind: KIND,
    async execute(params, ctx) {
      const source = sourceOf(params);
      const input = inputJson(params);
      const limits = limitsOf(params, ctx, caps);
      if (ctx.signal.aborted) throw abortError(ctx.signal.reason);
      const logs = new Logs();
      const job: SandboxJob = { source, input, memoryBytes: Math.floor(limits.memoryMb * 1024 * 1024) };
      const result = await runInWorker(workers, job, limits, ctx, logs);
      return { outputs: { result, logs: logs.output() } };
    },
  };
}

function sourceOf(params: Params): SandboxSource {
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

function limitsOf(params: Params, ctx: StepContext, caps: FunctionCaps): Limits {
  const own = optDurationMs(KIND, params, "timeout");
  const asked = [own, ctx.timeoutMs].filter((t): t is number => typeof t === "number" && t > 0);
  const wantedMs = asked.length > 0 ? Math.min(...asked) : DEFAULT_TIMEOUT_MS;
  const ownMb = optNumber(KIND, params, "memory_mb", { min: 1 });
  const wantedMb = ownMb ?? DEFAULT_MEMORY_MB;
  if (own !== undefined && own > caps.timeoutMs) lowered(ctx.logger, ctx.stepId, "timeout", own, caps.timeoutMs);
  if (ownMb !== undefined && ownMb > caps.memoryMb) lowered(ctx.logger, ctx.stepId, "memory_mb", ownMb, caps.memoryMb);
  return {
    timeoutMs: Math.min(wantedMs, caps.timeoutMs),
    memoryMb: Math.min(wantedMb, caps.memoryMb),
    capped: { timeout: wantedMs > caps.timeoutMs, memory: wantedMb > caps.memoryMb },
  };
}

function lowered(logger: Logger, step: string, parameter: string, asked: number, cap: number): void {
  logger.warn("function step asks for more than the server allows: the server's cap applies", { step, parameter, asked, cap });
}

/**
 * Worker threads for sandboxes. One is kept warm (its QuickJS loaded) between steps and does
 * not keep the process alive; a step that finds none starts one.
 */
class SandboxWorkers {
  private warm: Worker | undefined;

  take(): Worker {
    const worker = this.warm ?? this.start();
    this.warm = undefined;
    worker.ref();
    return worker;
  }

  /** Back from a step that ended cleanly: kept warm, unless one already is. */
  give(worker: Worker): void {
    if (this.warm) {
      void worker.terminate();
      return;
    }
    worker.unref();
    this.warm = worker;
  }

  private start(): Worker {
    const worker = spawnSandboxWorker();
    // A worker that dies while warm is forgotten; one that dies during a step is reported by
    // that step. This listener also keeps a worker's error from becoming the process's.
    worker.on("error", () => undefined);
    worker.once("exit", () => {
      if (this.warm === worker) this.warm = undefined;
    });
    return worker;
  }
}

/**
 * The worker gets no `resourceLimits`: QuickJS's own limit is the memory cap. A V8 heap limit on
 * the worker is no safety net: when it is reached while the WebAssembly memory grows, V8 aborts
 * the whole process, not the worker (a large input did that).
 *
 * The worker's entry is the compiled function-worker.js beside this module (dist/). When this
 * module runs from its TypeScript source (the tests run src/ through vitest), there is only
 * function-worker.ts: a bootstrap loads it through tsx (a devDependency), whose ESM API it finds
 * through tsx's package exports (Node 20's require.resolve knows only the CommonJS build, and
 * tsx's global hooks do not reach worker threads).
 */
function spawnSandboxWorker(): Worker {
  if (!import.meta.url.endsWith(".ts")) return new Worker(new URL("./function-worker.js", import.meta.url));
  const entry = JSON.stringify(new URL("./function-worker.ts", import.meta.url).href);
  const boot = `
    const { createRequire } = await import("node:module");
    const { pathToFileURL } = await import("node:url");
    const require = createRequire(${entry});
    const manifest = require.resolve("tsx/package.json");
    const api = new URL(require(manifest).exports["./esm/api"].import.default, pathToFileURL(manifest));
    const { tsImport } = await import(api.href);
    await tsImport(${entry}, ${entry});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(boot)}`));
}

/** Runs one job in a worker: its reply, or the limit that stopped it. */
function runInWorker(workers: SandboxWorkers, job: SandboxJob, limits: Limits, ctx: StepContext, logs: Logs): Promise<unknown> {
  const worker = workers.take();
  return new Promise((resolve, reject) => {
    let done = false;
    /** Ends the step once; a worker that did not end its job cleanly is terminated, never reused. */
    const finish = (clean: boolean, outcome: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onAbort);
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
      if (clean) workers.give(worker);
      else void worker.terminate();
      outcome();
    };
    const timer = setTimeout(() => finish(false, () => reject(timeoutError(limits, logs))), limits.timeoutMs);
    const onAbort = (): void => finish(false, () => reject(abortError(ctx.signal.reason)));
    const onMessage = (reply: SandboxReply): void => {
      switch (reply.type) {
        case "log":
          logs.lines.push(reply.line);
          ctx.logger.debug("function console output", { step: ctx.stepId, level: reply.level, text: reply.text.slice(0, 1000) });
          return;
        case "dropping":
          logs.dropped = "some";
          return;
        case "result":
          logs.dropped = reply.dropped;
          return finish(true, () => resolve(JSON.parse(reply.json) as unknown));
        case "error":
          logs.dropped = reply.dropped;
          return finish(true, () => reject(new NonRetriableError("SANDBOX_ERROR", reply.message, { ...reply.details, logs: logs.output() })));
        case "memory":
          // The module that ran out is discarded by the worker, but a fresh worker costs little.
          logs.dropped = reply.dropped;
          return finish(false, () => reject(memoryError(limits, logs)));
        default:
          return assertNever(reply, "sandbox reply");
      }
    };
    const onError = (err: Error): void =>
      finish(false, () => reject(new NonRetriableError("SANDBOX_ERROR", `the sandbox failed: ${err.message}`, { logs: logs.output() })));
    const onExit = (exitCode: number): void =>
      finish(false, () => reject(new NonRetriableError("SANDBOX_ERROR", `the sandbox's worker stopped (exit code ${exitCode})`, { logs: logs.output() })));
    ctx.signal.addEventListener("abort", onAbort, { once: true });
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
    worker.postMessage(job);
  });
}

function timeoutError(limits: Limits, logs: Logs): NonRetriableError {
  const cap = limits.capped.timeout ? " (the server's cap, SLUICE_FUNCTION_MAX_TIMEOUT)" : "";
  return new NonRetriableError("SANDBOX_TIMEOUT", `the function ran longer than its time limit of ${limits.timeoutMs} ms${cap}`, {
    timeout_ms: limits.timeoutMs,
    logs: logs.output(),
  });
}

function memoryError(limits: Limits, logs: Logs): NonRetriableError {
  const mb = Math.round(limits.memoryMb * 100) / 100;
  const cap = limits.capped.memory ? " (the server's cap, SLUICE_FUNCTION_MAX_MEMORY_MB)" : "";
  return new NonRetriableError("SANDBOX_MEMORY", `the function used more than its memory limit of ${mb} MB${cap}`, {
    memory_mb: mb,
    logs: logs.output(),
  });
}
