/**
 * Sluice as the benchmarks drive it: a fresh store per measurement (a SQLite file, or a new
 * database on the benchmark's PostgreSQL server), a Runtime in this process, and the built CLI
 * (`sluice worker`, `sluice serve`, `sluice validate`) as separate processes.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import { createLogger } from "../../src/adapters/logger.js";
import { defaultExecutors } from "../../src/adapters/steps/index.js";
import { FileResourceStore, openRunStore } from "../../src/adapters/store/index.js";
import { Runtime } from "../../src/app/runtime.js";
import type { Flow } from "../../src/core/flow/types.js";
import { DEFAULT_CONFIG, validateFlow } from "../../src/core/flow/validate.js";
import type { RunStore } from "../../src/ports/run-store.js";
import { makeRepo, type TestRepo } from "../../test/support/git-repo.js";
import { sleep, until } from "./measure.js";

export const CLI = resolve(import.meta.dirname, "../../dist/src/cli.js");
export const REPO = "bench/local";

export type StoreKind = "SQLite" | "PostgreSQL";

/** A fresh store: where it is, and the environment that points the CLI at it. */
export interface Target {
  kind: StoreKind;
  /** A SQLite file path or a postgres:// URL. */
  location: string;
  /** For the CLI: SLUICE_HOME (SQLite) or DATABASE_URL. */
  env: Record<string, string>;
  /** Scratch space of this target (resources, the CLI's home). */
  dir: string;
}

/** Scratch directories and the git checkout the CLI runs in, removed at the end. */
export class Workspace {
  readonly root = mkdtempSync(join(tmpdir(), "sluice-bench-"));
  private repo: TestRepo | undefined;
  private databases = 0;

  constructor(private readonly pgUrl: string) {}

  /** A git checkout for the CLI's working directory (local mode reads flows from commits). */
  get checkout(): string {
    this.repo ??= makeRepo({});
    return this.repo.dir;
  }

  async target(kind: StoreKind, name: string): Promise<Target> {
    const dir = join(this.root, `${name}-${++this.databases}`);
    mkdirSync(dir, { recursive: true });
    if (kind === "SQLite") return { kind, location: join(dir, "sluice.db"), env: { SLUICE_HOME: dir }, dir };
    const db = `bench_${name.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${this.databases}`;
    await adminQuery(this.pgUrl, `CREATE DATABASE ${db}`);
    const url = this.pgUrl.replace(/\/[^/]*$/, `/${db}`);
    return { kind, location: url, env: { DATABASE_URL: url, SLUICE_HOME: dir }, dir };
  }

  close(): void {
    this.repo?.remove();
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** One statement on the server's `postgres` database. */
export async function adminQuery<T extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url.replace(/\/[^/]*$/, "/postgres") });
  await client.connect();
  try {
    return (await client.query<T>(sql, values)).rows;
  } finally {
    await client.end();
  }
}

export interface Bench {
  store: RunStore;
  runtime: Runtime;
  close(): Promise<void>;
}

/** A store and a Runtime on it in this process, as the CLI and the server compose them. */
export async function openBench(target: Target): Promise<Bench> {
  const store = await openRunStore(target.location);
  const runtime = new Runtime({
    store,
    resources: new FileResourceStore(join(target.dir, "resources")),
    executors: defaultExecutors(),
    secrets: { get: () => undefined, values: () => [] },
    logger: createLogger("silent"),
    mode: "local",
  });
  return { store, runtime, close: () => store.close() };
}

function flowOf(yaml: string): Flow {
  const v = validateFlow(yaml);
  if (!v.flow) throw new Error(`a benchmark flow is invalid: ${JSON.stringify(v.diagnostics)}`);
  return v.flow;
}

/** `n` steps of `kv get` (a read of the store, the cheapest step that does I/O). */
export function kvFlow(n: number): Flow {
  return flowOf(`name: kv-${n}\non: { manual: {} }\nsteps:\n${Array.from({ length: n }, (_, i) => `  - id: s${i}\n    kv: { get: k }\n`).join("")}`);
}

/** An approval gate, then one `kv get`. */
export const gateFlow = (): Flow => flowOf(`name: gated\non: { manual: {} }\nsteps:\n  - id: review\n    wait: { approval: { title: Go on? } }\n  - id: next\n    kv: { get: k }\n`);

export function createRun(rt: Runtime, flow: Flow): Promise<string> {
  return rt.createRun({ flow, config: DEFAULT_CONFIG, release: { sha: "a".repeat(40), ref: "main", kind: "live" }, repo: REPO, inputs: {}, trigger: { type: "manual", actor: "alice" } });
}

/** Waits until none of the store's runs has one of `statuses` (by default: until every run ended). */
export async function allEnded(store: RunStore, limitMs: number, statuses: readonly ("queued" | "running" | "waiting")[] = ["queued", "running", "waiting"]): Promise<void> {
  await until("the runs to end", async () => (await store.listRuns({ status: statuses, limit: 1 })).length === 0, limitMs, 100);
}

export async function assertSucceeded(store: RunStore, ids: readonly string[]): Promise<void> {
  for (const id of ids) {
    const r = await store.getRun(id);
    if (r?.status !== "succeeded") throw new Error(`benchmark run ${id} is ${r?.status ?? "missing"}, not succeeded`);
  }
}

export interface CliProcess {
  child: ChildProcess;
  /** The last 16 KB it wrote to stderr (read as it comes, so a chatty process never blocks). */
  stderr(): string;
}

/** The built CLI as a child process in the workspace's checkout. */
export function spawnCli(ws: Workspace, target: Target, args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: ws.checkout,
    env: { ...process.env, ...target.env, LOG_LEVEL: "error", SLUICE_USER: "alice", ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let tail = "";
  child.stderr!.on("data", (d: Buffer) => (tail = (tail + d.toString()).slice(-16_384)));
  return { child, stderr: () => tail };
}

/** Waits until a `sluice worker` says it started (or gives up quietly after 15 s), then `settleMs`. */
export async function workerStarted(worker: CliProcess, settleMs: number): Promise<void> {
  await until("the worker to start", () => worker.stderr().includes("started") || worker.child.exitCode !== null, 15_000).catch(() => undefined);
  if (worker.child.exitCode !== null) throw new Error(`sluice worker exited with ${worker.child.exitCode}: ${worker.stderr()}`);
  await sleep(settleMs);
}

export function stop({ child }: CliProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once("exit", () => done());
    child.kill(signal);
  });
}

/** Resident memory of a process now and at its peak, in bytes (Linux). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), peak: kb("VmHWM") };
}

/** What a CLI process needs in its environment for `liveHeapOf`. */
export const HEAP_SNAPSHOTS = { NODE_OPTIONS: "--heapsnapshot-signal=SIGUSR2" };

/**
 * The live heap of a CLI process started with HEAP_SNAPSHOTS, in bytes: SIGUSR2 makes Node
 * collect garbage and write a heap snapshot (into its working directory, the checkout), whose
 * nodes' sizes are summed. What the process keeps, without what it merely has not given back.
 */
export async function liveHeapOf(ws: Workspace, proc: CliProcess): Promise<number> {
  const dir = ws.checkout;
  const mine = () => readdirSync(dir).filter((f) => f.endsWith(".heapsnapshot") && f.includes(`.${proc.child.pid}.`));
  for (const f of mine()) rmSync(join(dir, f));
  proc.child.kill("SIGUSR2");
  // Written when its size stops changing (the process writes it in one go, then carries on).
  let last = -1;
  const file = await until(
    "the heap snapshot",
    () => {
      const f = mine()[0];
      if (!f) return undefined;
      const size = statSync(join(dir, f)).size;
      const done = size > 0 && size === last;
      last = size;
      return done ? f : undefined;
    },
    120_000,
    500,
  );
  try {
    const snap = JSON.parse(readFileSync(join(dir, file), "utf8")) as { snapshot: { meta: { node_fields: string[] } }; nodes: number[] };
    const stride = snap.snapshot.meta.node_fields.length;
    const at = snap.snapshot.meta.node_fields.indexOf("self_size");
    let total = 0;
    for (let i = at; i < snap.nodes.length; i += stride) total += snap.nodes[i]!;
    return total;
  } finally {
    rmSync(join(dir, file), { force: true });
  }
}

/** The `at` of each run's first event of `type` (and step), from the journal. */
export async function eventTimes(store: RunStore, ids: readonly string[], match: (e: { type: string; step?: string }) => boolean): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const id of ids) {
    const hit = (await store.loadJournal(id)).find((s) => match(s.event as { type: string; step?: string }));
    if (hit) out.set(id, hit.event.at);
  }
  return out;
}
