/**
 * Wake-ups across processes: a `sluice worker` that polls only once an hour still starts a run
 * another process created at once, on SQLite (it watches the file for other processes' commits)
 * and on PostgreSQL (it LISTENs). Without either, the worker would sleep through the test.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { startPostgres, type TestPostgres } from "../support/postgres.js";

const FLOW = `
name: quick
on: { manual: {} }
steps:
  - id: count
    kv: { incr: { key: quick } }
`;

let repo: TestRepo;
let pg: TestPostgres;

beforeAll(async () => {
  repo = makeRepo({ ".github/flows/quick.yml": FLOW });
  pg = await startPostgres();
}, 60_000);

afterAll(async () => {
  await pg?.stop();
  repo?.remove();
});

/** A worker that looks at the store by itself only once an hour; resolves once it is up. */
async function sleepyWorker(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, "worker", "--poll", "1h"], {
    cwd: repo.dir,
    env: { ...process.env, SLUICE_USER: "alice", LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes("started")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`the worker exited (${code}): ${err}`)));
  });
  return child;
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** Starts a run from this (another) process and waits until the worker has run it. */
async function runThroughWorker(env: Record<string, string>): Promise<string> {
  const r = sluice(repo.dir, ["run", "quick", "--detach", "--json"], env);
  expect(r.code, r.stderr).toBe(0);
  const id = r.json.data.id as string;
  for (;;) {
    const status = sluice(repo.dir, ["runs", "show", id, "--json"], env).json?.data?.status;
    if (status === "succeeded") return id;
    expect(["queued", "running"]).toContain(status);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe("a worker hears another process's runs at once", () => {
  for (const store of ["SQLite", "PostgreSQL"] as const) {
    it(`on ${store}`, async () => {
      const env: Record<string, string> =
        store === "SQLite" ? { SLUICE_HOME: join(repo.dir, ".state-sqlite") } : { SLUICE_HOME: join(repo.dir, ".state-pg"), DATABASE_URL: pg.url };
      const worker = await sleepyWorker(env);
      try {
        // The first run may meet the worker's first look at the store; by the second, the worker
        // has gone back to sleep for an hour, and only a wake-up can start it.
        await runThroughWorker(env);
        await new Promise((resolve) => setTimeout(resolve, 300));
        await runThroughWorker(env);
        expect(worker.exitCode).toBeNull();
      } finally {
        await stop(worker);
      }
    }, 60_000);
  }
});
