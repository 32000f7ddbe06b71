/**
 * A throwaway PostgreSQL server for tests: `initdb` into a fresh temp dir, `pg_ctl start` on a
 * free loopback port, a database `sluice_test`. Each test file starts its own and stops it in
 * afterAll. Runs the server as the `postgres` OS user when the tests run as root (PostgreSQL
 * refuses to run as root), else as the current user.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { freePort } from "./net.js";

export interface TestPostgres {
  /** `postgres://postgres@127.0.0.1:<port>/sluice_test` */
  url: string;
  port: number;
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

export async function startPostgres(): Promise<TestPostgres> {
  const bin = postgresBinDir();
  const as = runAsPostgres();
  const root = mkdtempSync(join(tmpdir(), "sluice-pg-"));
  if (as.uid !== undefined && as.gid !== undefined) chownSync(root, as.uid, as.gid);
  const data = join(root, "data");
  const logFile = join(root, "server.log");

  try {
    run(
      join(bin, "initdb"),
      ["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
      as,
      "initdb",
    );
  } catch (err) {
    rmSync(root, { recursive: true, force: true });
    throw err;
  }

  let port = 0;
  let started = false;
  let lastError: unknown;
  // A free port can be taken between probing and binding: try a few.
  for (let i = 0; i < 5 && !started; i++) {
    port = await freePort();
    const opts = [
      `-p ${port}`,
      `-k ${root}`,
      "-c listen_addresses=127.0.0.1",
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c shared_buffers=16MB",
      "-c max_connections=50",
    ].join(" ");
    try {
      run(join(bin, "pg_ctl"), ["-D", data, "-l", logFile, "-w", "-t", "60", "-o", opts, "start"], as, "pg_ctl start");
      started = true;
    } catch (err) {
      lastError = err;
      spawnSync(join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], { ...as });
    }
  }
  if (!started) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
    rmSync(root, { recursive: true, force: true });
    throw new Error(`PostgreSQL did not start: ${String(lastError)}\n${log}`);
  }

  let stopped = false;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    spawnSync(join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "-t", "60", "stop"], { ...as });
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
    async stop() {
      process.removeListener("exit", onExit);
      stopSync();
    },
  };
}
