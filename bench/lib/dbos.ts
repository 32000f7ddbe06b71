/**
 * DBOS Transact (`@dbos-inc/dbos-sdk`, a dev dependency of the benchmarks only) on the same
 * PostgreSQL server as Sluice: its system database `dbos_bench_sys`, and an application table
 * the steps read, so a DBOS step does the work of a Sluice `kv get` step (one read of a row).
 *
 * A workflow of `n` steps; each step is checkpointed by DBOS (its output recorded in the system
 * database) before the next starts, as each Sluice step is journaled.
 */
import { DBOS } from "@dbos-inc/dbos-sdk";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import pg from "pg";
import { adminQuery } from "./sluice.js";

// The package exports no package.json: read it from where it is installed.
export const DBOS_VERSION: string = JSON.parse(readFileSync(resolve(import.meta.dirname, "../../node_modules/@dbos-inc/dbos-sdk/package.json"), "utf8")).version;
export const DBOS_DATABASES = ["dbos_bench_sys", "dbos_bench_app"];

let app: pg.Pool | undefined;

async function readStep(): Promise<unknown> {
  return (await app!.query("SELECT value FROM kv WHERE key = $1", ["k"])).rows[0]?.value ?? null;
}

async function readingWorkflow(n: number): Promise<number> {
  for (let i = 0; i < n; i++) await DBOS.runStep(readStep, { name: `s${i}` });
  return n;
}

async function emptyWorkflow(n: number): Promise<number> {
  for (let i = 0; i < n; i++) await DBOS.runStep(async () => i, { name: `s${i}` });
  return n;
}

// Workflows are registered before DBOS launches.
const reading = DBOS.registerWorkflow(readingWorkflow, { name: "reading" });
const empty = DBOS.registerWorkflow(emptyWorkflow, { name: "empty" });

export interface Dbos {
  /** Runs one workflow of `n` steps to its end. */
  run(n: number, kind?: "read" | "empty"): Promise<void>;
  /** Starts `runs` workflows of `steps` steps at once and waits for all of them. */
  many(runs: number, steps: number): Promise<void>;
  close(): Promise<void>;
}

export async function launchDbos(serverUrl: string): Promise<Dbos> {
  const base = serverUrl.replace(/\/[^/]*$/, "");
  for (const db of DBOS_DATABASES) await adminQuery(serverUrl, `CREATE DATABASE ${db}`);
  app = new pg.Pool({ connectionString: `${base}/dbos_bench_app`, max: 10 });
  await app.query("CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT)");
  await app.query("INSERT INTO kv VALUES ('k', 'v')");
  DBOS.setConfig({ name: "sluice-bench", systemDatabaseUrl: `${base}/dbos_bench_sys`, logLevel: "error" });
  await DBOS.launch();
  return {
    async run(n, kind = "read") {
      await (await DBOS.startWorkflow(kind === "read" ? reading : empty)(n)).getResult();
    },
    async many(runs, steps) {
      const handles = [];
      for (let i = 0; i < runs; i++) handles.push(await DBOS.startWorkflow(reading)(steps));
      await Promise.all(handles.map((h) => h.getResult()));
    },
    async close() {
      await DBOS.shutdown();
      await app?.end();
      app = undefined;
    },
  };
}
