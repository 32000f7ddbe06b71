/**
 * Crash safety with real processes: `sluice worker` is killed with SIGKILL at random moments
 * while many runs are in flight, restarted, and killed again. Every run must still reach its
 * end, and no completed step may have been executed twice. Executions are counted outside the
 * engine, by the HTTP peer the steps call: each request carries the attempt's idempotency key.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { startHttpPeer, type HttpPeer } from "../support/http-peer.js";

const FLOW = `
name: crashy
on: { manual: { inputs: { n: { type: number, default: 0 } } } }
steps:
  - id: one
    http: { method: POST, connection: counter, url: /hit, body: { step: one } }
  - id: nap
    sleep: 200ms
  - id: two
    function: { code: "let x = 0; for (let i = 0; i < 300000; i++) x += i; return x" }
  - id: three
    http: { method: POST, connection: counter, url: /hit, body: { step: three } }
  - id: four
    http: { method: POST, connection: counter, url: /hit, body: { step: four } }
outputs:
  n: \${{ inputs.n }}
`;

const HTTP_STEPS = ["one", "three", "four"];

/** Increments that count themselves: each run's own key, and one key every run shares. */
const COUNTER = `
name: counter
on: { manual: {} }
steps:
  - id: a
    kv: { incr: { key: "run-\${{ run.id }}" } }
  - id: shared-a
    kv: { incr: { key: shared, by: 1 } }
  - id: slow
    http: { method: POST, connection: counter, url: /hit, body: { step: slow } }
  - id: b
    kv: { incr: { key: "run-\${{ run.id }}" } }
  - id: shared-b
    kv: { incr: { key: shared, by: 1 } }
  - id: nap
    sleep: 100ms
  - id: c
    kv: { incr: { key: "run-\${{ run.id }}" } }
`;

let repo: TestRepo;
let peer: HttpPeer;
let env: Record<string, string>;

beforeAll(async () => {
  // Answers after a random pause, so kills land before, during and after requests.
  peer = await startHttpPeer(async (_req, res) => {
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 60)));
    res.writeHead(200, { "content-type": "application/json" });
    res.end('{"ok":true}');
  });
  repo = makeRepo({
    ".github/sluice.yml": `connections:\n  counter: { type: http, base_url: "${peer.origin}" }\npolicy:\n  allow: { http: ["POST ${peer.origin}/**"] }\n`,
    ".github/flows/crashy.yml": FLOW,
    ".github/flows/counter.yml": COUNTER,
  });
  env = { SLUICE_HOME: join(repo.dir, ".state") };
});

afterAll(async () => {
  await peer.stop();
  repo.remove();
});

/** `leaseMs`: short where workers are killed (their runs come free soon), long where none is. */
function startWorker(leaseMs = 3000): ChildProcess {
  return spawn(process.execPath, [CLI, "worker", "--poll", "50ms"], {
    cwd: repo.dir,
    env: { ...process.env, ...env, SLUICE_LEASE_MS: String(leaseMs) },
    stdio: "ignore",
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

function listRuns(): { id: string; status: string }[] {
  return sluice(repo.dir, ["runs", "list", "--limit", "100", "--json"], env).json.data.runs;
}

/** Every idempotency key the peer saw, with how often. */
function keysSeen(): Map<string, number> {
  const seen = new Map<string, number>();
  for (const r of peer.requests) {
    const key = String(r.headers["idempotency-key"]);
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return seen;
}

function checkRuns(ids: string[]): void {
  const seen = keysSeen();
  for (const [key, count] of seen) expect(count, `attempt ${key} executed ${count} times`).toBe(1);
  for (const id of ids) {
    const events = sluice(repo.dir, ["runs", "events", id, "--json"], env).json.data.events as { type: string; step?: string; attempt?: number }[];
    expect(events.at(-1)).toMatchObject({ type: "run_completed", status: "succeeded" });
    for (const step of HTTP_STEPS) {
      const done = events.filter((e) => e.type === "step_succeeded" && e.step === step);
      expect(done, `${id}/${step} completed once`).toHaveLength(1);
      const k = done[0]!.attempt!;
      expect(seen.get(`${id}:${step}:${k}`), `${id}/${step} attempt ${k} reached the peer`).toBe(1);
      // Nothing ran again after the step completed.
      const later = [...seen.keys()].filter((key) => key.startsWith(`${id}:${step}:`) && Number(key.split(":")[2]) > k);
      expect(later).toEqual([]);
    }
  }
}

describe("crash safety", () => {
  it("runs survive repeated SIGKILLs of the worker; no completed step runs twice", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = sluice(repo.dir, ["run", "crashy", "--detach", "--input", `n=${i}`, "--json"], env);
      expect(r.code).toBe(0);
      ids.push(r.json.data.id);
    }
    let kills = 0;
    for (let round = 0; round < 40; round++) {
      const worker = startWorker();
      await new Promise((r) => setTimeout(r, 250 + Math.floor(Math.random() * 700)));
      await kill(worker);
      kills++;
      if (kills >= 12 && listRuns().every((r) => r.status === "succeeded")) break;
    }
    // A last worker, left alone, finishes whatever the kills left behind.
    const last = startWorker();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !listRuns().every((r) => r.status === "succeeded")) await new Promise((r) => setTimeout(r, 300));
    await kill(last);
    expect(kills).toBeGreaterThanOrEqual(12);
    expect(listRuns().map((r) => r.status)).toEqual(ids.map(() => "succeeded"));
    checkRuns(ids);
  }, 180_000);

  it("kv writes commit with their results: SIGKILL storms neither lose nor repeat an increment", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(sluice(repo.dir, ["run", "counter", "--detach", "--json"], env).json.data.id);
    const done = () => listRuns().filter((r) => ids.includes(r.id)).every((r) => r.status === "succeeded");
    let kills = 0;
    for (let round = 0; round < 6; round++) {
      // Two workers at once, so increments of one key race between processes too.
      const workers = [startWorker(), startWorker()];
      await new Promise((r) => setTimeout(r, 400 + Math.floor(Math.random() * 800)));
      await Promise.all(workers.map(kill));
      kills += 2;
    }
    const last = startWorker();
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !done()) await new Promise((r) => setTimeout(r, 300));
    await kill(last);
    expect(kills).toBeGreaterThanOrEqual(10);
    expect(done()).toBe(true);
    const kv = (key: string) => sluice(repo.dir, ["kv", "get", key, "--json"], env).json.data.value;
    for (const id of ids) expect(kv(`run-${id}`), `run ${id}'s own counter`).toBe(3);
    expect(kv("shared")).toBe(ids.length * 2);
  }, 180_000);

  it("two workers on one SQLite file never execute the same attempt twice", async () => {
    peer.requests.length = 0;
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(sluice(repo.dir, ["run", "crashy", "--detach", "--json"], env).json.data.id);
    // No worker dies here, so a lease long enough never to lapse on a busy machine: a lapse would
    // (rightly) let the other worker run a read again as a new attempt, and the count below is exact.
    const workers = [startWorker(30_000), startWorker(30_000)];
    const deadline = Date.now() + 90_000;
    const done = () => listRuns().filter((r) => ids.includes(r.id)).every((r) => r.status === "succeeded");
    while (Date.now() < deadline && !done()) await new Promise((r) => setTimeout(r, 300));
    await Promise.all(workers.map(kill));
    expect(done()).toBe(true);
    checkRuns(ids);
    // No crash here: each step of each run ran exactly once.
    expect(peer.requests.length).toBe(ids.length * HTTP_STEPS.length);
  }, 180_000);
});
