/**
 * `sluice worker` on PostgreSQL when the database restarts: the worker lives through it and
 * finishes every run, each write once and each kv increment once; a worker started while the
 * database is down waits for it; and one whose database stays away longer than
 * SLUICE_DB_DEADLINE exits with code 5. Real processes, a real server restarted for real.
 */
import { spawn, type ChildProcess } from "node:child_process";
import pg from "pg";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, sluice, sluiceAsync } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { startHttpPeer, type HttpPeer } from "../support/http-peer.js";
import { startPostgres, type TestPostgres } from "../support/postgres.js";

const FLOW = `
name: weather
on: { manual: {} }
steps:
  - id: one
    kv: { incr: { key: "run-\${{ run.id }}" } }
  - id: post
    http: { method: POST, connection: peer, url: /hit }
  - id: nap
    sleep: 200ms
  - id: two
    kv: { incr: { key: "run-\${{ run.id }}" } }
  - id: all
    kv: { incr: { key: all } }
`;

let repo: TestRepo;
let peer: HttpPeer;
let server: TestPostgres;
let env: Record<string, string>;

beforeAll(async () => {
  peer = await startHttpPeer(async (_req, res) => {
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 40)));
    res.writeHead(200, { "content-type": "application/json" });
    res.end("{}");
  });
  server = await startPostgres();
  repo = makeRepo({
    ".github/sluice.yml": `connections:\n  peer: { type: http, base_url: "${peer.origin}" }\npolicy:\n  auto_approve: [read, write]\n`,
    ".github/flows/weather.yml": FLOW,
  });
  env = { DATABASE_URL: server.url, SLUICE_HOME: join(repo.dir, ".state"), SLUICE_LEASE_MS: "2000" };
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await peer?.stop();
  repo?.remove();
});

function worker(extra: Record<string, string> = {}): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, "worker", "--poll", "200ms"], {
    cwd: repo.dir,
    env: { ...process.env, SLUICE_USER: "alice", LOG_LEVEL: "warn", ...env, ...extra },
    stdio: "ignore",
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, exited };
}

async function stop(w: { child: ChildProcess; exited: Promise<number | null> }): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGTERM");
  await w.exited;
}

function statuses(ids: string[]): string[] {
  const runs = sluice(repo.dir, ["runs", "list", "--limit", "200", "--json"], env).json.data.runs as { id: string; status: string }[];
  return ids.map((id) => runs.find((r) => r.id === id)?.status ?? "missing");
}

describe("sluice worker on PostgreSQL, through restarts", () => {
  it("lives through a clean restart and a crash of the database and finishes every run, each write and increment once", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) ids.push(sluice(repo.dir, ["run", "weather", "--detach", "--json"], env).json.data.id);
    const workers = [worker(), worker()];
    try {
      await new Promise((r) => setTimeout(r, 400));
      await server.restart({ mode: "fast", downMs: 500 });
      await new Promise((r) => setTimeout(r, 400));
      await server.restart({ mode: "immediate", downMs: 500 });
      for (const w of workers) expect(w.child.exitCode, "a worker died of the restart").toBeNull();
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && !statuses(ids).every((s) => s === "succeeded")) await new Promise((r) => setTimeout(r, 300));
      expect(statuses(ids)).toEqual(ids.map(() => "succeeded"));
      for (const w of workers) expect(w.child.exitCode).toBeNull();
    } finally {
      await Promise.all(workers.map(stop));
    }
    // Each write reached the peer once: its start and its result are durable.
    const keys = peer.requests.map((r) => String(r.headers["idempotency-key"]));
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys.filter((k) => ids.some((id) => k.startsWith(`${id}:post:`))).length).toBeGreaterThanOrEqual(ids.length);
    const db = new pg.Client({ connectionString: server.url });
    await db.connect();
    try {
      const posts = await db.query<{ run_id: string; n: number }>(
        "SELECT run_id, count(*)::int AS n FROM events WHERE type = 'step_succeeded' AND event->>'step' = 'post' AND run_id = ANY($1) GROUP BY run_id",
        [ids],
      );
      expect(posts.rows.map((r) => r.n)).toEqual(ids.map(() => 1));
      // Each increment counted once: a kv write commits with its result, or neither happened.
      const kv = await db.query<{ key: string; value: number }>("SELECT key, value FROM kv");
      const value = (key: string) => kv.rows.find((r) => r.key === key)?.value;
      for (const id of ids) expect(value(`run-${id}`), `run ${id}'s counter`).toBe(2);
      expect(value("all")).toBe(ids.length);
    } finally {
      await db.end();
    }
  }, 120_000);

  it("a worker started while the database is down waits for it, then works", async () => {
    const restarting = server.restart({ mode: "fast", downMs: 2_000 });
    const w = worker();
    try {
      await restarting;
      const r = await sluiceAsync(repo.dir, ["run", "weather", "--detach", "--json"], env);
      expect(r.code, r.stderr).toBe(0);
      const id = r.json.data.id as string;
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && statuses([id])[0] !== "succeeded") await new Promise((res) => setTimeout(res, 200));
      expect(statuses([id])).toEqual(["succeeded"]);
      expect(w.child.exitCode).toBeNull();
    } finally {
      await stop(w);
    }
  }, 60_000);

  it("a worker whose database stays away longer than SLUICE_DB_DEADLINE exits with code 5", async () => {
    const w = worker({ SLUICE_DB_DEADLINE: "1s" });
    // Up and working first: a run it finishes.
    const id = sluice(repo.dir, ["run", "weather", "--detach", "--json"], env).json.data.id as string;
    while (statuses([id])[0] !== "succeeded") await new Promise((res) => setTimeout(res, 200));
    const restarting = server.restart({ mode: "fast", downMs: 5_000 });
    expect(await w.exited).toBe(5);
    await restarting;
  }, 60_000);
});
