import { describe, expect, it } from "vitest";
import { createFunctionExecutor } from "../../../src/adapters/steps/function.js";
import { NonRetriableError, SluiceError } from "../../../src/core/errors.js";
import type { Logger } from "../../../src/ports/step-executor.js";
import { makeStepContext, type LogLine } from "../../support/step-context.js";

const functionExecutor = createFunctionExecutor();

async function run(params: Record<string, unknown>, extra: Parameters<typeof makeStepContext>[0] = {}) {
  return (await functionExecutor.execute(params, makeStepContext(extra))).outputs;
}

async function failure(params: Record<string, unknown>, extra: Parameters<typeof makeStepContext>[0] = {}): Promise<SluiceError> {
  const err = await functionExecutor.execute(params, makeStepContext(extra)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the step should have failed").toBeInstanceOf(SluiceError);
  return err as SluiceError;
}

describe("function step", () => {
  it("has kind function", () => {
    expect(functionExecutor.kind).toBe("function");
  });

  describe("results", () => {
    it("returns what the body returns, as JSON", async () => {
      expect(await run({ code: "return 1 + 2" })).toEqual({ result: 3, logs: [] });
      expect((await run({ code: "return 'text'" })).result).toBe("text");
      expect((await run({ code: "return { a: [1, { b: null }], ok: true }" })).result).toEqual({ a: [1, { b: null }], ok: true });
      expect((await run({ code: "return [NaN, Infinity, -0]" })).result).toEqual([null, null, 0]);
      expect((await run({ code: "return { when: new Date(0), skip: undefined, f() {} }" })).result).toEqual({ when: "1970-01-01T00:00:00.000Z" });
      expect((await run({ code: "return { toJSON() { return 'custom' } }" })).result).toBe("custom");
    });

    it("turns undefined (or no return) into null", async () => {
      expect((await run({ code: "return undefined" })).result).toBeNull();
      expect((await run({ code: "const x = 1;" })).result).toBeNull();
      expect((await run({ code: "" })).result).toBeNull();
    });

    it("awaits a returned promise and allows await in the body", async () => {
      expect((await run({ code: "return Promise.resolve(41).then((x) => x + 1)" })).result).toBe(42);
      expect((await run({ code: "const v = await Promise.all([1, 2].map(async (x) => x * 10)); return v" })).result).toEqual([10, 20]);
    });

    it("refuses a function, a symbol, a bigint or a cyclic value as the result", async () => {
      for (const [code, pattern] of [
        ["return () => 1", /function is not JSON/],
        ["return Symbol('s')", /symbol is not JSON/],
        ["return 10n", /bigint is not JSON/],
        ["const o = {}; o.self = o; return o", /circular|cyclic/i],
      ] as const) {
        const err = await failure({ code });
        expect(err, code).toBeInstanceOf(NonRetriableError);
        expect(err.code, code).toBe("SANDBOX_ERROR");
        expect(err.message, code).toMatch(/not JSON/);
        expect(err.message, code).toMatch(pattern);
      }
    });

    it("fails a promise that can never settle", async () => {
      const err = await failure({ code: "return new Promise(() => {})" });
      expect(err.code).toBe("SANDBOX_ERROR");
      expect(err.message).toMatch(/never settles/);
    });
  });

  describe("input", () => {
    it("passes the evaluated input as `input`", async () => {
      const input = { items: [{ n: 2 }, { n: 5 }], label: "ünï ✓", nothing: null };
      const out = await run({ code: "return { sum: input.items.reduce((s, i) => s + i.n, 0), label: input.label, nothing: input.nothing }", input });
      expect(out.result).toEqual({ sum: 7, label: "ünï ✓", nothing: null });
    });

    it("gives null when there is no input, and primitives as they are", async () => {
      expect((await run({ code: "return input" })).result).toBeNull();
      expect((await run({ code: "return typeof input + ':' + input", input: 5 })).result).toBe("number:5");
      expect((await run({ code: "return input.length", input: "abc" })).result).toBe(3);
    });

    it("does not let the function change the caller's input", async () => {
      const input = { list: [1] };
      await run({ code: "input.list.push(2); input.added = true; return input", input });
      expect(input).toEqual({ list: [1] });
    });
  });

  describe("errors", () => {
    it("a thrown error is SANDBOX_ERROR with the JS message and its stack line", async () => {
      const err = await failure({ code: "const x = 1;\nif (x) throw new TypeError('bad thing happened');\nreturn x" });
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("SANDBOX_ERROR");
      expect(err.message).toMatch(/^TypeError: bad thing happened \(function\.js:2:\d+\)$/);
      expect(err.details).toMatchObject({ name: "TypeError", message: "bad thing happened" });
      expect(String(err.details.stack)).toMatch(/function\.js:2/);
    });

    it("a thrown non-error value is SANDBOX_ERROR naming the value", async () => {
      const err = await failure({ code: "throw { reason: 'nope' }" });
      expect(err.code).toBe("SANDBOX_ERROR");
      expect(err.message).toBe('the function threw {"reason":"nope"}');
      expect((await failure({ code: "throw null" })).message).toBe("the function threw null");
      expect((await failure({ code: "return Promise.reject('later')" })).message).toBe('the function threw "later"');
    });

    it("a syntax error is SANDBOX_ERROR with its line", async () => {
      const err = await failure({ code: "const ok = 1;\nreturn ok +* 2" });
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("SANDBOX_ERROR");
      expect(err.message).toMatch(/^SyntaxError: .+ \(function\.js:2:\d+\)$/);
    });

    it("deep recursion is a JS error, not a crash of the host", async () => {
      const err = await failure({ code: "function r(n) { return r(n + 1) + 1 } return r(0)" });
      expect(err.code).toBe("SANDBOX_ERROR");
      expect(err.message).toMatch(/stack overflow/i);
      expect(String(err.details.stack).split("\n").length).toBeLessThanOrEqual(5);
      // The host is fine: the next call works.
      expect((await run({ code: "return 'still alive'" })).result).toBe("still alive");
    });
  });

  describe("limits", () => {
    it("stops a runaway loop with SANDBOX_TIMEOUT at the `timeout` parameter", async () => {
      const err = await failure({ code: "while (true) {}", timeout: "200ms" });
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("SANDBOX_TIMEOUT");
      expect(err.details.timeout_ms).toBe(200);
    });

    it("uses the step's timeout when it is the smaller one", async () => {
      const err = await failure({ code: "for (;;) { Math.random() }", timeout: "1h" }, { timeoutMs: 150 });
      expect(err.code).toBe("SANDBOX_TIMEOUT");
      expect(err.details.timeout_ms).toBe(150);
    });

    it("stops a runaway allocation with SANDBOX_MEMORY at `memory_mb`", async () => {
      const err = await failure({ code: "const a = []; for (;;) a.push({ i: a.length, s: 'x' + a.length })", memory_mb: 8, timeout: "30s" });
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("SANDBOX_MEMORY");
      expect(err.details.memory_mb).toBe(8);
      expect((await run({ code: "return 'fine after'" })).result).toBe("fine after");
    });

    it("treats a string grown without bound as a memory error", async () => {
      const err = await failure({ code: "let s = 'x'; for (;;) s = s + s", memory_mb: 16, timeout: "30s" });
      expect(err.code).toBe("SANDBOX_MEMORY");
    });

    it("runs functions side by side: a quick one ends while a runaway one spins", async () => {
      const order: string[] = [];
      const stop = new AbortController();
      let spinning: () => void = () => undefined;
      const started = new Promise<void>((r) => (spinning = r));
      const logger: Logger = { debug: () => spinning(), info: () => undefined, warn: () => undefined, error: () => undefined };
      const code = "console.log('spinning'); for (;;) {}";
      const spinner = functionExecutor.execute({ code, timeout: "20s" }, makeStepContext({ signal: stop.signal, logger })).catch((e: SluiceError) => {
        order.push(`spinner ${e.code}`);
      });
      await started;
      const quick = await functionExecutor.execute({ code: "return 'quick'" }, makeStepContext());
      order.push(`quick ${String(quick.outputs.result)}`);
      stop.abort();
      await spinner;
      expect(order).toEqual(["quick quick", "spinner STEP_ABORTED"]);
    });

    it("refuses an input larger than the memory limit with SANDBOX_MEMORY, and the process lives on", async () => {
      const limited = createFunctionExecutor({ timeoutMs: 30_000, memoryMb: 1 });
      const err = await limited.execute({ code: "return input.length", input: "x".repeat(80_000_000) }, makeStepContext()).then(
        () => undefined,
        (e: unknown) => e as SluiceError,
      );
      expect(err?.code).toBe("SANDBOX_MEMORY");
      expect((await limited.execute({ code: "return 'still here'" }, makeStepContext())).outputs.result).toBe("still here");
    });

    it("lets a modest allocation through under the default limit", async () => {
      const out = await run({ code: "const a = new Array(100000).fill(0).map((_, i) => i); return a.length" });
      expect(out.result).toBe(100000);
    });
  });

  describe("abort", () => {
    it("does not start when the step is already aborted", async () => {
      const controller = new AbortController();
      controller.abort();
      const err = await failure({ code: "return 1" }, { signal: controller.signal });
      expect(err.code).toBe("STEP_ABORTED");
    });

    it("stops a running function when ctx.signal is aborted mid-run", async () => {
      // The abort arrives while the function runs (here from the logger the sandbox's console
      // reports to); the sandbox's interrupt check sees it and stops the loop.
      const controller = new AbortController();
      const logger: Logger = {
        debug: (_msg, meta) => {
          if (meta?.text === "abort me") controller.abort();
        },
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      };
      const err = await failure({ code: "console.log('abort me'); for (;;) {}", timeout: "1h" }, { signal: controller.signal, logger });
      expect(err).toBeInstanceOf(NonRetriableError);
      expect(err.code).toBe("STEP_ABORTED");
    });
  });

  describe("sandbox", () => {
    it("has no require, fetch, process, timers, imports or host modules", async () => {
      const out = await run({
        code: `return {
          require: typeof require, fetch: typeof fetch, process: typeof process, setTimeout: typeof setTimeout,
          setInterval: typeof setInterval, XMLHttpRequest: typeof XMLHttpRequest, WebSocket: typeof WebSocket,
          std: typeof std, os: typeof os, Deno: typeof Deno, Bun: typeof Bun, module: typeof module,
          globalProcess: typeof globalThis.process, Buffer: typeof Buffer, WebAssembly: typeof WebAssembly,
        }`,
      });
      expect(Object.values(out.result as Record<string, string>).every((t) => t === "undefined")).toBe(true);
    });

    it("cannot reach the host through the Function constructor either", async () => {
      const out = await run({ code: "return Function('return typeof process + typeof require')()" });
      expect(out.result).toBe("undefinedundefined");
    });

    it("keeps nothing between calls", async () => {
      await run({ code: "globalThis.leak = 'secret'; return 1" });
      expect((await run({ code: "return typeof globalThis.leak" })).result).toBe("undefined");
    });

    it("a module that imports anything fails: there is nothing to import", async () => {
      const err = await failure({ file: "lib/fs.js", file_source: "import fs from 'fs';\nexport default () => fs.readFileSync('/etc/passwd')" });
      expect(err.code).toBe("SANDBOX_ERROR");
      expect(err.message).toMatch(/fs/);
    });
  });

  describe("console", () => {
    it("captures console output into `logs`, with levels, and reports it to the logger", async () => {
      const lines: LogLine[] = [];
      const out = await run(
        { code: "console.log('hello', 42, { a: 1 }); console.warn('careful'); console.error(new Error('x').message); return null" },
        { logs: lines },
      );
      expect(out.logs).toEqual(["hello 42 {\"a\":1}", "warn: careful", "error: x"]);
      expect(lines.filter((l) => l.msg === "function console output").map((l) => l.meta?.text)).toEqual(["hello 42 {\"a\":1}", "careful", "x"]);
    });

    it("caps the captured logs", async () => {
      const out = await run({ code: "for (let i = 0; i < 1000; i++) console.log('line ' + i); return 1" });
      const logs = out.logs as string[];
      expect(logs.length).toBe(201);
      expect(logs[0]).toBe("line 0");
      expect(logs.at(-1)).toBe("… 800 more log line(s) dropped");
    });

    it("keeps the logs of a failed run in the error's details", async () => {
      const err = await failure({ code: "console.log('before'); throw new Error('after')" });
      expect(err.details.logs).toEqual(["before"]);
    });
  });

  describe("file modules", () => {
    it("calls the module's default export with the input", async () => {
      const out = await run({ file: "scripts/score.js", file_source: "const k = 3;\nexport default function score(input) { return input.n * k }", input: { n: 4 } });
      expect(out.result).toBe(12);
    });

    it("calls `main` when there is no default export, and awaits it", async () => {
      const out = await run({ file: "scripts/main.js", file_source: "export async function main(input) { return { got: input } }", input: [1] });
      expect(out.result).toEqual({ got: [1] });
    });

    it("supports top-level await in a module", async () => {
      const out = await run({ file_source: "const base = await Promise.resolve(10);\nexport default (x) => base + x", input: 5 });
      expect(out.result).toBe(15);
    });

    it("fails clearly when the module exports no function", async () => {
      const err = await failure({ file: "scripts/empty.js", file_source: "export const value = 1" });
      expect(err.code).toBe("SANDBOX_ERROR");
      expect(err.message).toBe("scripts/empty.js: the module exports neither a default function nor a function 'main'");
    });

    it("names the file in a thrown error's stack line", async () => {
      const err = await failure({ file: "scripts/bad.js", file_source: "export default function () {\n  throw new Error('from the file')\n}" });
      expect(err.message).toMatch(/^Error: from the file \(scripts\/bad\.js:2:\d+\)$/);
    });
  });

  describe("parameters", () => {
    it("refuses bad parameters with PARAM_INVALID", async () => {
      for (const params of [
        {},
        { code: 42 },
        { code: "return 1", file_source: "export default () => 1" },
        { file: "scripts/x.js" },
        { code: "return 1", timeout: "soon" },
        { code: "return 1", memory_mb: 0 },
        { code: "return 1", memory_mb: -1 },
        { code: "return 1", memory_mb: "lots" },
        { code: "return 1", input: { big: 10n } },
      ]) {
        const err = await failure(params as Record<string, unknown>);
        expect(err, JSON.stringify(params, (_k, v: unknown) => (typeof v === "bigint" ? "bigint" : v))).toBeInstanceOf(NonRetriableError);
        expect(err.code).toBe("PARAM_INVALID");
      }
    });
  });
});
