/**
 * A throwaway PostgreSQL server for tests and benchmarks: `initdb` into a fresh temp dir,
 * `pg_ctl start` on a free loopback port, a database `sluice_test`. Each test file starts its own
 * and stops it in afterAll. Runs the server as the `postgres` OS user when the tests run as root
 * (PostgreSQL refuses to run as root), else as the current user.
 *
 * Tests get a fast server (no fsync: nothing here needs to survive a power loss); benchmarks ask
 * for a `durable` one, configured as a production server commits. `restart()` stops the server
 * (fast: sessions are terminated, as a restart for maintenance does; immediate: as a crash) and
 * starts it again on the same port with the same data, for the tests of database failures.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { freePort } from "./net.js";

export interface PostgresOptions {
  /** fsync, synchronous_commit and full_page_writes on, as in production (default off: tests). */
  durable?: boolean;
  /** max_connections (default 50). */
  maxConnections?: number;
  /** More server settings (`-c name=value`), e.g. `shared_preload_libraries`. */
  settings?: Record<string, string>;
}

export interface RestartOptions {
  /** `fast` terminates sessions and shuts down cleanly; `immediate` stops like a crash (recovery on start). Default `fast`. */
  mode?: "fast" | "immediate";
  /** How long the server stays down before it starts again. Default 0. */
  downMs?: number;
}

export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/sluice_test` */
  url: string;
  port: number;
  /** The server's log so far (its last `bytes`), for a test that fails. */
  log(bytes?: number): string;
  /** Stops the server and starts it again on the same port with the same data; resolves once it accepts connections. */
  restart(opts?: RestartOptions): Promise<void>;
  stop(): Promise<void>;
}

const PG_ROOT = "/usr/lib/postgresql";

/** The bin directory of the highest installed PostgreSQL version (or of `pg_config --bindir`). */
export function postgresBinDir(): string {
  if (existsSync(PG_ROOT)) {
    const versions = readdirSync(PG_ROOT)
      .filter((v) => /^[0-9]+$/.test(v) && existsSync(join(PG_ROOT, v, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(PG_ROOT, versions[0], "bin");
  }
  try {
    const dir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    if (existsSync(join(dir, "initdb"))) return dir;
  } catch {
    // fall through
  }
  throw new Error(`PostgreSQL is not installed: no initdb under ${PG_ROOT}/*/bin (install Debian's postgresql)`);
}


interface RunAs {
  uid?: number;
  gid?: number;
}

function runAsPostgres(): RunAs {
  if (typeof process.getuid !== "function" || process.getuid() !== 0) return {};
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error("no 'postgres' OS user to run PostgreSQL as");
  return { uid, gid };
}

function run(bin: string, args: string[], as: RunAs, what: string): void {
  const res = spawnSync(bin, args, { ...as, cwd: tmpdir(), encoding: "utf8", env: { ...process.env, LC_ALL: "C", LANG: "C" } });
  if (res.status !== 0) {
    throw new Error(`${what} failed (exit ${res.status ?? res.signal}): ${res.stderr || res.stdout || res.error?.message}`);
  }
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const as = runAsPostgres();
  const root = mkdtempSync(join(tmpdir(), "sluice-pg-"));
  if (as.uid !== undefined && as.gid !== undefined) chownSync(root, as.uid, as.gid);
  const data = join(root, "data");
  const logFile = join(root, "server.log");
  const readLog = (bytes = 2000): string => (existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-bytes) : "");

  try {
    run(
      join(bin, "initdb"),
      ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-instructions", ...(opts.durable ? [] : ["--no-sync"])],
      as,
      "initdb",
    );
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }

  const settings = (port: number): string =>
    [
      `-p ${port}`,
      `-k ${root}`,
      "-c listen_addresses=127.0.0.1",
      ...(opts.durable ? [] : ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]),
      `-c shared_buffers=${opts.durable ? "128MB" : "16MB"}`,
      `-c max_connections=${opts.maxConnections ?? 50}`,
      ...Object.entries(opts.settings ?? {}).map(([k, v]) => `-c ${k}=${v}`),
    ].join(" ");
  const pgStart = (port: number): void => run(join(bin, "pg_ctl"), ["-D", data, "-l", logFile, "-w", "-t", "60", "-o", settings(port), "start"], as, "pg_ctl start");
  const pgStop = (mode: "fast" | "immediate"): void => {
    spawnSync(join(bin, "pg_ctl"), ["-D", data, "-m", mode, "-w", "-t", "60", "stop"], { ...as });
  };

  let port = 0;
  let started = false;
  let lastError: unknown;
  // A free port can be taken between probing and binding: try a few.
  for (let i = 0; i < 5 && !started; i++) {
    port = await freePort();
    try {
      pgStart(port);
      started = true;
    } catch (err) {
      lastError = err;
      pgStop("immediate");
    }
  }
  if (!started) {
    const log = readLog();
    rmSync(root, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${String(lastError)}\n${log}`);
  }

  let stopped = false;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    pgStop("fast");
    rmSync(root, { recursive: true, force: true });
  };
  // If the test process exits without calling stop(), do not leave a server behind.
  const onExit = (): void => stopSync();
  process.once("exit", onExit);

  try {
    const admin = new pg.Client({ host: "127.0.0.1", port, user: "postgres", database: "postgres" });
    await admin.connect();
    try {
      await admin.query("CREATE DATABASE sluice_test");
    } finally {
      await admin.end();
    }
  } catch (err) {
    stopSync();
    process.removeListener("exit", onExit);
    throw err;
  }

  return {
    url: `postgres://postgres@127.0.0.1:${port}/sluice_test`,
    port,
    log: readLog,
    async restart(r = {}) {
      if (stopped) throw new Error("the PostgreSQL server was stopped; it cannot be restarted");
      pgStop(r.mode ?? "fast");
      if (r.downMs) await sleep(r.downMs);
      // Same port: the clients reconnect to the address they know. Something else could take the
      // port meanwhile (unlikely on loopback); then the restart fails loudly rather than moving.
      let error: unknown;
      for (let i = 0; i < 20; i++) {
        try {
          pgStart(port);
          return;
        } catch (err) {
          error = err;
          await sleep(250);
        }
      }
      throw new Error(`PostgreSQL did not start again on port ${port}: ${String(error)}\n${readLog()}`);
    },
    async stop() {
      process.removeListener("exit", onExit);
      stopSync();
    },
  };
}
