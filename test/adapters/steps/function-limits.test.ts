/**
 * The `function` step's limits as the server sets them: the sandbox runs off the event loop (a
 * loopback HTTP server in the same process answers while a `while (true) {}` step runs in a real
 * run), and SLUICE_FUNCTION_MAX_TIMEOUT / SLUICE_FUNCTION_MAX_MEMORY_MB cap what a flow asks.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultExecutors } from "../../../src/adapters/steps/index.js";
import { FileResourceStore } from "../../../src/adapters/store/file-resource-store.js";
import { openSqliteRunStore } from "../../../src/adapters/store/sqlite/sqlite-run-store.js";
import { Runtime } from "../../../src/app/runtime.js";
import { SluiceError } from "../../../src/core/errors.js";
import { DEFAULT_CONFIG, validateFlow } from "../../../src/core/flow/validate.js";
import type { Flow } from "../../../src/core/flow/types.js";
import type { RunStore } from "../../../src/ports/run-store.js";
import type { Logger } from "../../../src/ports/step-executor.js";
import { makeStepContext } from "../../support/step-context.js";

const SPIN = `
name: spin
on: { manual: {} }
steps:
  - id: spin
    function:
      code: "console.log('spinning'); while (true) {}"
      timeout: 10s
`;

const BOMB = `
name: bomb
on:
  manual:
    inputs:
      mem: { type: number, default: 4096 }
steps:
  - id: bomb
    function:
      code: "const a = []; for (;;) a.push([...'x'.repeat(1 << 16)])"
      memory_mb: \${{ inputs.mem }}
`;

function flow(text: string): Flow {
  const v = validateFlow(text);
  if (!v.flow) throw new Error(JSON.stringify(v.diagnostics));
  return v.flow;
}

/** What happened, in order: the test asserts on the order, never on durations. */
const events: string[] = [];
const warnings: { msg: string; meta?: Record<string, unknown> }[] = [];
let spinning: () => void = () => undefined;
const logger: Logger = {
  debug: (msg, meta) => {
    if (msg === "function console output" && meta?.text === "spinning") spinning();
  },
  info: () => undefined,
  warn: (msg, meta) => warnings.push({ msg, ...(meta ? { meta } : {}) }),
  error: () => undefined,
};

let dir: string;
let store: RunStore;
let runtime: Runtime;
let server: Server;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-function-limits-"));
  store = openSqliteRunStore(join(dir, "sluice.db"));
  runtime = new Runtime({
    store,
    resources: new FileResourceStore(join(dir, "resources")),
    executors: defaultExecutors({ env: { SLUICE_FUNCTION_MAX_TIMEOUT: "2s", SLUICE_FUNCTION_MAX_MEMORY_MB: "16" } }),
    secrets: { get: () => undefined, values: () => [] },
    logger,
    mode: "local",
  });
  server = createServer((_req, res) => {
    events.push("server answered");
    res.end("pong");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function start(text: string): Promise<string> {
  const f = flow(text);
  return runtime.createRun({
    flow: f,
    config: DEFAULT_CONFIG,
    release: { sha: "c".repeat(40), ref: "refs/heads/main", kind: "live" },
    repo: "acme/widgets",
    inputs: Object.fromEntries(Object.entries(f.on.manual?.inputs ?? {}).map(([k, v]) => [k, v.default])),
    trigger: { type: "manual", actor: "bob" },
  });
}

async function stepFailure(id: string, step: string): Promise<{ code: string; message: string }> {
  const failed = (await store.loadJournal(id)).map((s) => s.event).find((e) => e.type === "step_failed" && e.step === step);
  if (!failed || failed.type !== "step_failed") throw new Error(`step ${step} did not fail`);
  return failed.error;
}

describe("function step limits set by the server", () => {
  it("a runaway step does not stall the server, and stops at the server's time cap though the flow asked for 10s", async () => {
    const id = await start(SPIN);
    const running = new Promise<void>((r) => (spinning = r));
    const advanced = runtime.advance(id).then(() => events.push("step ended"));
    // The sandbox printed 'spinning' and is now in its endless loop: ask the server something.
    await running;
    events.push("request sent");
    const answer = await fetch(`${base}/ping`).then((r) => r.text());
    events.push("answer received");
    await advanced;

    expect(answer).toBe("pong");
    expect(events).toEqual(["request sent", "server answered", "answer received", "step ended"]);
    const error = await stepFailure(id, "spin");
    expect(error.code).toBe("SANDBOX_TIMEOUT");
    expect(error.message).toBe("the function ran longer than its time limit of 2000 ms (the server's cap, SLUICE_FUNCTION_MAX_TIMEOUT)");
    expect(warnings).toContainEqual({
      msg: "function step asks for more than the server allows: the server's cap applies",
      meta: expect.objectContaining({ step: "spin", parameter: "timeout", asked: 10_000, cap: 2000 }),
    });
  });

  it("a flow asking for memory_mb 4096 gets the server's 16 MB, and an allocation bomb ends with SANDBOX_MEMORY", async () => {
    const id = await start(BOMB);
    await runtime.advance(id);
    const error = await stepFailure(id, "bomb");
    expect(error.code).toBe("SANDBOX_MEMORY");
    expect(error.message).toBe("the function used more than its memory limit of 16 MB (the server's cap, SLUICE_FUNCTION_MAX_MEMORY_MB)");
    expect(warnings).toContainEqual({
      msg: "function step asks for more than the server allows: the server's cap applies",
      meta: expect.objectContaining({ step: "bomb", parameter: "memory_mb", asked: 4096, cap: 16 }),
    });
  });
});

describe("the server's caps from the environment", () => {
  function envError(env: NodeJS.ProcessEnv): SluiceError {
    try {
      defaultExecutors({ env });
    } catch (e) {
      expect(e).toBeInstanceOf(SluiceError);
      return e as SluiceError;
    }
    throw new Error("defaultExecutors accepted the environment");
  }

  it("refuses a bad SLUICE_FUNCTION_MAX_TIMEOUT or SLUICE_FUNCTION_MAX_MEMORY_MB with ENV_INVALID naming it", () => {
    for (const value of ["soon", "0s", "30", "25d", "-1s"]) {
      const err = envError({ SLUICE_FUNCTION_MAX_TIMEOUT: value });
      expect(err.code, value).toBe("ENV_INVALID");
      expect(err.message, value).toContain(`SLUICE_FUNCTION_MAX_TIMEOUT must be a duration from 1ms to 24h (such as 30s), not '${value}'`);
    }
    for (const value of ["lots", "0", "1.5", "2048", "-5"]) {
      const err = envError({ SLUICE_FUNCTION_MAX_MEMORY_MB: value });
      expect(err.code, value).toBe("ENV_INVALID");
      expect(err.message, value).toContain(`SLUICE_FUNCTION_MAX_MEMORY_MB must be a whole number of MiB from 1 to 1024, not '${value}'`);
    }
    const both = envError({ SLUICE_FUNCTION_MAX_TIMEOUT: "x", SLUICE_FUNCTION_MAX_MEMORY_MB: "y" });
    expect(both.details.problems).toHaveLength(2);
  });

  it("applies the caps it reads, and 30s / 128 MB when the environment says nothing", async () => {
    const failure = (env: NodeJS.ProcessEnv, params: Record<string, unknown>) =>
      defaultExecutors({ env }).get("function")!.execute(params, makeStepContext()).then(
        () => {
          throw new Error("the step should have failed");
        },
        (e: SluiceError) => e,
      );
    const slow = await failure({ SLUICE_FUNCTION_MAX_TIMEOUT: "300ms" }, { code: "for (;;) {}", timeout: "10s" });
    expect([slow.code, slow.details.timeout_ms]).toEqual(["SANDBOX_TIMEOUT", 300]);
    // 100 MiB is more than the default 64 and fits the default cap of 128; 200 MiB does not.
    const big = await defaultExecutors({ env: {} }).get("function")!.execute({ code: "return new ArrayBuffer(100 * 1024 * 1024).byteLength", memory_mb: 4096 }, makeStepContext());
    expect(big.outputs.result).toBe(100 * 1024 * 1024);
    const greedy = await failure({}, { code: "return new ArrayBuffer(200 * 1024 * 1024).byteLength", memory_mb: 4096 });
    expect([greedy.code, greedy.details.memory_mb]).toEqual(["SANDBOX_MEMORY", 128]);
    const modest = await failure({ SLUICE_FUNCTION_MAX_MEMORY_MB: "1024" }, { code: "return new ArrayBuffer(100 * 1024 * 1024).byteLength", memory_mb: 16 });
    expect([modest.code, modest.details.memory_mb]).toEqual(["SANDBOX_MEMORY", 16]);
  });
});
