/**
 * Faults across processes (issue 12, item 8). Three `sluice serve` processes share one
 * PostgreSQL database while a few hundred runs are in flight:
 *
 * - runs start from GitHub deliveries sent as signed webhooks to any server (some delivered
 *   twice, to two servers, as GitHub redelivers): mostly `issues.labeled` events that trigger the
 *   flow, some `/run` comments; and from a schedule that ticks every 2 s;
 * - their steps count what they do OUTSIDE Sluice: an HTTP peer on loopback records every
 *   idempotency key it receives (a read and a write), a `db` step adds a row to a ledger table
 *   (a SQLite file), and `kv incr` steps count in the store itself (kv is exactly once);
 * - a quarter of the runs stop at an approval gate, decided while all this goes on by the CLI's
 *   `approve`, from yet other processes; a write left started-but-unfinished by a kill opens an
 *   unknown-outcome gate, which the same "human" decides as a careful one would: the peer or the
 *   ledger says whether the attempt took effect (skip it) or not (retry it); a kv step's is
 *   retried without looking, since kv must never need a human;
 * - a server is SIGKILLed and started again every few seconds, and PostgreSQL is restarted twice
 *   (once shut down cleanly, once stopped like a crash).
 *
 * Then: every delivery started exactly one run and every tick at most one; every run ended, and
 * succeeded; no attempt of a write reached the outside twice (a read's may, after a database crash
 * lost its unfsynced start: SPEC §4) and nothing ran after a recorded
 * success; each write and each kv increment took effect exactly once; and no server died of
 * the database going away. Every problem found is listed at once. The figures (runs, kills,
 * restarts, duration, the longest stall of a run) are printed; nothing here asserts a time.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setLiveRelease } from "../../src/adapters/github/snapshot.js";
import { openRunStore } from "../../src/adapters/store/index.js";
import type { JournalEvent } from "../../src/core/engine/events.js";
import { kvNamespace } from "../../src/core/namespaces.js";
import { isTerminal, type RunStore } from "../../src/ports/run-store.js";
import { startGitHub, type GitHubFixture } from "../github/fixtures.js";
import { CLI, sluiceAsync } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { startHttpPeer, type HttpPeer } from "../support/http-peer.js";
import { freePort } from "../support/net.js";
import { startPostgres, type TestPostgres } from "../support/postgres.js";

const REPO = "acme/widgets";
const SERVERS = 3;
/**
 * Deliveries sent over LOAD_MS: `issues.labeled` events, and one in COMMAND_EVERY a `/run`
 * comment instead (a command costs GitHub writes: fewer of them). One in GATED_EVERY waits at a gate.
 */
const RUNS = 200;
const COMMAND_EVERY = 10;
const GATED_EVERY = 4;
/** One in REDELIVER_EVERY accepted deliveries is delivered again, to another server. */
const REDELIVER_EVERY = 7;
const LOAD_MS = 32_000;
/** When PostgreSQL goes down, from the start of the load, and for how long. */
const PG_RESTARTS = [
  { at: 9_000, mode: "fast", downMs: 1_000 },
  { at: 22_000, mode: "immediate", downMs: 1_500 },
] as const;
/** Liveness bounds (not timings): how long the runs may take to finish once the load stops. */
const DRAIN_MS = 60_000;
/** SLUICE_FAULT_LOGS=<dir> keeps every server's log there (info level), to see what happened. */
const LOGS = process.env.SLUICE_FAULT_LOGS;

const retry = "retry: { max_attempts: 6, backoff: fixed, initial: 500ms }";
// A label `n-<n>` or `gated-<n>` triggers it; so does `/run fault n=<n> [gated=true]`.
const FAULT_FLOW = `name: fault
on:
  manual:
    inputs:
      n: { type: string, required: false }
      gated: { type: boolean, default: false }
  github:
    - event: issues
      actions: [labeled]
steps:
  - id: read1
    ${retry}
    http: { method: POST, connection: counter, url: /read/read1, body: { n: "\${{ inputs.n || github.event.label.name }}" } }
  - id: count1
    ${retry}
    kv: { incr: { key: "runs/\${{ run.id }}", by: 1 } }
  - id: record
    ${retry}
    db: { connection: ledger, query: "INSERT INTO ledger (run, step, n) VALUES ($1, 'record', 1) ON CONFLICT (run, step) DO UPDATE SET n = n + 1", params: ["\${{ run.id }}"] }
  - id: review
    if: \${{ inputs.gated || startsWith(github.event.label.name, 'gated-') }}
    wait: { approval: { title: "Go on?" } }
  - id: write1
    ${retry}
    http: { method: POST, connection: counter, url: /write/write1, body: { go: true } }
  - id: nap
    sleep: 100ms
  - id: count2
    ${retry}
    kv: { incr: { key: "runs/\${{ run.id }}", by: 1 } }
  - id: total
    ${retry}
    kv: { incr: { key: total, by: 1 } }
`;

const TICK_FLOW = `name: tick
on:
  schedule:
    - cron: "*/2 * * * * *"
steps:
  - id: hit
    ${retry}
    http: { method: POST, connection: counter, url: /read/hit, body: { tick: true } }
  - id: count
    ${retry}
    kv: { incr: { key: "runs/\${{ run.id }}", by: 1 } }
`;

/** Steps whose every attempt reaches the HTTP peer, with the idempotency key. */
const PEER_READS: Record<string, string[]> = { fault: ["read1"], tick: ["hit"] };
const PEER_WRITES: Record<string, string[]> = { fault: ["write1"], tick: [] };
/** The steps that add one to `runs/<run id>`. */
const KV_STEPS: Record<string, string[]> = { fault: ["count1", "count2"], tick: ["count"] };

interface Server {
  slot: number;
  child: ChildProcess;
  url?: string;
  stderr: string;
  killedByUs: boolean;
  exited: Promise<void>;
}

interface Sent {
  n: number;
  event: "issues" | "issue_comment";
  deliveryId: string;
  payload: Record<string, unknown>;
  /** The server that answered 2xx. */
  acceptedBy?: Server;
  tries: number;
}

let pgServer: TestPostgres;
let gh: GitHubFixture;
let peer: HttpPeer;
let cliRepo: TestRepo;
let dir: string;
let ledger: Database.Database;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-fault-"));
  if (LOGS) mkdirSync(LOGS, { recursive: true });
  [pgServer, peer] = await Promise.all([
    startPostgres({ maxConnections: 200 }),
    // Answers after a random pause, so kills land before, during and after requests.
    startHttpPeer(async (_req, res) => {
      await sleep(Math.floor(Math.random() * 40));
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    }),
  ]);
  const ledgerPath = join(dir, "ledger.db");
  ledger = new Database(ledgerPath);
  ledger.pragma("journal_mode = WAL");
  ledger.exec("CREATE TABLE ledger (run TEXT NOT NULL, step TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (run, step))");
  const config = `connections:
  counter: { type: http, base_url: "${peer.origin}" }
  ledger: { type: sqlite, path: "${ledgerPath}" }
policy:
  auto_approve: [read, notify, kv, db, http]
  allow: { http: ["POST ${peer.origin}/read/**"] }
`;
  gh = await startGitHub({ files: { ".github/sluice.yml": config, ".github/flows/fault.yml": FAULT_FLOW, ".github/flows/tick.yml": TICK_FLOW } });
  cliRepo = makeRepo();
}, 60_000);

afterAll(async () => {
  ledger?.close();
  await peer?.stop();
  await gh?.sim.stop();
  await pgServer?.stop();
  cliRepo?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A fresh connection per question: the test's own view must survive the restarts it causes. */
async function ask<T extends pg.QueryResultRow>(sql: string): Promise<T[] | undefined> {
  const client = new pg.Client({ connectionString: pgServer.url, connectionTimeoutMillis: 2_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    return (await client.query<T>(sql)).rows;
  } catch {
    return undefined;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The delivery a run of `fault` came from: its `/run` input, or the number in its label. */
function deliveryOf(created: Extract<JournalEvent, { type: "run_created" }>): number {
  if (created.inputs.n !== undefined && created.inputs.n !== null && created.inputs.n !== "") return Number(created.inputs.n);
  const label = (created.trigger.event as { label?: { name?: unknown } } | undefined)?.label?.name;
  return Number(String(label).replace(/^[a-z]+-/, ""));
}

/** What the journal says of one step, compactly: `started#1 → failed#1 (DB_ERROR) → …`. */
function trace(events: JournalEvent[], step: string): string {
  return events
    .filter((e) => "step" in e && e.step === step)
    .map((e) => {
      const attempt = "attempt" in e && typeof e.attempt === "number" ? `#${e.attempt}` : "";
      const extra = e.type === "step_failed" ? ` (${e.error.code}: ${e.error.message.slice(0, 120)})` : e.type === "unknown_outcome_resolved" ? ` (${e.action})` : "";
      return `${e.type.replace(/^step_/, "")}${attempt}${extra}`;
    })
    .join(" → ");
}

/** How the inbox holds each delivery (for the message of a delivery that started no run). */
async function deliveryStates(): Promise<Map<string, string>> {
  const rows = await ask<{ id: string; attempts: number; lease_owner: string | null; lease_until: string | null; processed_at: string | null; last_error: string | null }>(
    "SELECT id, attempts, lease_owner, lease_until, processed_at, last_error FROM deliveries",
  );
  const now = Date.now();
  return new Map(
    (rows ?? []).map((r) => [
      r.id,
      r.processed_at !== null
        ? `processed after ${r.attempts} attempt(s)${r.last_error ? `, last error: ${r.last_error.slice(0, 200)}` : ""}`
        : `not processed, ${r.attempts} attempt(s), ${r.lease_owner ? `claimed by ${r.lease_owner} for ${Math.round((Number(r.lease_until) - now) / 1000)} s more` : "unclaimed"}${r.last_error ? `, last error: ${r.last_error.slice(0, 200)}` : ""}`,
    ]),
  );
}

async function withStore<T>(fn: (store: RunStore) => Promise<T>): Promise<T> {
  const store = await openRunStore(pgServer.url);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

describe("faults across processes", () => {
  it("three servers on one PostgreSQL: SIGKILLs, two database restarts, gates decided from the CLI; nothing lost, nothing twice", async () => {
    const started = Date.now();
    const problems: string[] = [];
    const cliEnv = { DATABASE_URL: pgServer.url, SLUICE_HOME: join(dir, "cli") };
    // Migrate once, and make the release live (the schedule ticks from then on).
    const sha = gh.sim.branchSha(REPO, "main")!;
    await withStore((store) => setLiveRelease(store, REPO, { sha, ref: "main", at: Date.now() }, Date.now()));

    // ---- the servers ------------------------------------------------------------------------
    const servers: (Server | undefined)[] = Array.from({ length: SERVERS }, () => undefined);
    const deaths: string[] = [];
    const loopsStopped: string[] = [];
    let stopping = false;
    let starts = 0;

    const startServer = async (slot: number): Promise<void> => {
      const port = await freePort();
      starts++;
      const child = spawn(process.execPath, [CLI, "serve"], {
        cwd: dir,
        env: {
          ...process.env,
          ...gh.env,
          PORT: String(port),
          HOST: "127.0.0.1",
          DATABASE_URL: pgServer.url,
          SLUICE_HOME: join(dir, `server-${slot}`),
          SLUICE_PUBLIC_URL: `http://127.0.0.1:${port}`,
          NO_SMEE_SETUP: "true",
          LOG_LEVEL: LOGS ? "info" : "warn",
        },
        stdio: ["ignore", "ignore", "pipe"],
      });
      const server: Server = { slot, child, stderr: "", killedByUs: false, exited: new Promise((r) => child.once("exit", () => r())) };
      child.stderr!.on("data", (d: Buffer) => {
        server.stderr = (server.stderr + d.toString()).slice(-20_000);
        if (LOGS) appendFileSync(join(LOGS, `server-${slot}.log`), d);
        for (const line of d.toString().split("\n")) if (line.includes("a server loop stopped")) loopsStopped.push(`server ${slot}: ${line.slice(0, 400)}`);
        if (!server.url && server.stderr.includes(`listening on http://127.0.0.1:${port}`)) server.url = `http://127.0.0.1:${port}`;
      });
      child.once("exit", (code, signal) => {
        if (server.killedByUs || stopping) return;
        deaths.push(`server ${slot} exited by itself (code ${code}, signal ${signal}) ${Math.round((Date.now() - started) / 1000)} s in; its stderr ended with:\n${server.stderr.slice(-1500)}`);
        // Keep three servers up, so the rest of the test still says something.
        if (servers[slot] === server) void sleep(500).then(() => (stopping ? undefined : startServer(slot)));
      });
      servers[slot] = server;
    };

    const kill = async (server: Server): Promise<void> => {
      server.killedByUs = true;
      server.child.kill("SIGKILL");
      await server.exited;
    };
    const ready = (): Server[] => servers.filter((s): s is Server => !!s?.url && s.child.exitCode === null && s.child.signalCode === null && !s.killedByUs);
    const anyReady = async (): Promise<Server> => {
      for (;;) {
        const r = ready();
        if (r.length) return r[Math.floor(Math.random() * r.length)]!;
        await sleep(50);
      }
    };

    for (let slot = 0; slot < SERVERS; slot++) await startServer(slot);
    const upBy = Date.now() + 30_000;
    while (ready().length < SERVERS && Date.now() < upBy) await sleep(50);
    expect(ready().length, `servers up: ${servers.map((s) => s?.stderr.slice(-500)).join("\n")}`).toBe(SERVERS);

    // ---- deliveries ---------------------------------------------------------------------------
    const issues = Array.from({ length: 20 }, (_, i) => gh.sim.createIssue(REPO, { title: `fault ${i}`, user: "acme" }).number);
    const sent: Sent[] = [];
    let redeliveries = 0;
    const deliver = async (d: Sent, server: Server): Promise<boolean> => {
      d.tries++;
      try {
        const res = await gh.sim.sendWebhook(`${server.url}/api/github/webhooks`, d.event, d.payload, { secret: gh.webhookSecret, deliveryId: d.deliveryId });
        return res.status >= 200 && res.status < 300;
      } catch {
        return false; // the server was killed under the request
      }
    };
    const send = async (n: number): Promise<void> => {
      const gated = n % GATED_EVERY === 0;
      const issue = issues[n % issues.length]!;
      const command = n % COMMAND_EVERY === 0;
      const payload = command
        ? gh.sim.payloads.issueComment({ repo: REPO, issue, sender: "acme", body: `/run fault n=${n}${gated ? " gated=true" : ""}` })
        : gh.sim.payloads.issues({ repo: REPO, issue, sender: "acme", action: "labeled", label: `${gated ? "gated" : "n"}-${n}` });
      const d: Sent = { n, event: command ? "issue_comment" : "issues", deliveryId: `fault-${n}`, payload, tries: 0 };
      sent.push(d);
      // As GitHub's redelivery: the same delivery again until a server answers 2xx.
      const until = Date.now() + 30_000;
      while (!d.acceptedBy && Date.now() < until) {
        const server = await anyReady();
        if (await deliver(d, server)) d.acceptedBy = server;
        else await sleep(300);
      }
      const other = ready().find((s) => s !== d.acceptedBy);
      if (d.acceptedBy && other && n % REDELIVER_EVERY === 0) {
        redeliveries++;
        await deliver(d, other);
      }
    };

    // ---- the approver: CLI processes deciding open gates -------------------------------------
    const decided = new Map<string, "approve" | "reject">();
    const decisions = { approvals: 0, unknownRetried: new Map<string, number>(), unknownSkipped: new Map<string, number>(), cliRuns: 0, cliCrashes: [] as string[] };
    const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
    let approving = true;
    const peerSaw = (key: string) => peer.requests.some((r) => r.headers["idempotency-key"] === key);
    const ledgerHas = (run: string) => ledger.prepare("SELECT n FROM ledger WHERE run = ? AND step = 'record'").get(run) !== undefined;
    type Gate = { run: string; flow: string; step: string; kind: string; digest: string; evidence: { key?: string }[] };
    const decide = async (g: Gate): Promise<void> => {
      const id = `${g.run}/${g.step}/${g.digest}`;
      let verdict: "approve" | "reject" = "approve";
      if (g.kind === "unknown_outcome") {
        // A careful human looks at the target before running a write again.
        const key = g.evidence[0]?.key;
        if (g.step === "write1") verdict = key && peerSaw(key) ? "reject" : "approve";
        if (g.step === "record") verdict = ledgerHas(g.run) ? "reject" : "approve";
      }
      decided.set(id, verdict);
      decisions.cliRuns++;
      const r = await sluiceAsync(cliRepo.dir, [verdict, g.run, "--step", g.step, "--as", "bob", "--json"], cliEnv);
      if (r.json === undefined) decisions.cliCrashes.push(`${verdict} ${g.run} ${g.step}: exit ${r.code}: ${r.stderr.slice(-600)}`);
      const counted = r.json?.ok === true || r.code === 0 || r.code === 3 || (r.code === 1 && r.json?.kind === "Run");
      if (!counted && r.json?.error?.code !== "NOT_WAITING") {
        decided.delete(id); // not recorded (the database was away, say): decide again later
        return;
      }
      if (!counted) return;
      if (g.kind !== "unknown_outcome") decisions.approvals++;
      else bump(verdict === "approve" ? decisions.unknownRetried : decisions.unknownSkipped, `${g.flow}/${g.step}`);
    };
    const approver = (async () => {
      const inFlight = new Set<Promise<void>>();
      while (approving) {
        const r = await sluiceAsync(cliRepo.dir, ["gates", "list", "--json"], cliEnv);
        for (const g of (r.json?.data?.gates ?? []) as Gate[]) {
          if (decided.has(`${g.run}/${g.step}/${g.digest}`)) continue;
          while (inFlight.size >= 3) await Promise.race(inFlight);
          const p = decide(g).finally(() => inFlight.delete(p));
          inFlight.add(p);
        }
        await sleep(400);
      }
      await Promise.all(inFlight);
    })();

    // ---- chaos: kills and database restarts, while the deliveries go out -----------------------
    const loadStart = Date.now();
    let kills = 0;
    const restarts: { mode: string; downMs: number; tookMs: number }[] = [];
    const sending = (async () => {
      const pending: Promise<void>[] = [];
      for (let n = 1; n <= RUNS; n++) {
        pending.push(send(n));
        await sleep(LOAD_MS / RUNS);
      }
      await Promise.all(pending);
    })();
    const killing = (async () => {
      while (Date.now() - loadStart < LOAD_MS) {
        await sleep(1_500 + Math.random() * 2_000);
        const victims = ready();
        const victim = victims[Math.floor(Math.random() * victims.length)];
        if (!victim) continue;
        await kill(victim);
        kills++;
        await sleep(Math.random() * 500);
        if (servers[victim.slot] === victim) await startServer(victim.slot);
      }
    })();
    const restarting = (async () => {
      for (const r of PG_RESTARTS) {
        await sleep(Math.max(0, loadStart + r.at - Date.now()));
        const t = Date.now();
        await pgServer.restart({ mode: r.mode, downMs: r.downMs });
        restarts.push({ mode: r.mode, downMs: r.downMs, tookMs: Date.now() - t });
      }
    })();
    await Promise.all([sending, killing, restarting]);
    const loadMs = Date.now() - loadStart;

    // The schedule stops: a release without the tick flow goes live.
    const next = gh.sim.pushCommit(REPO, "main", { ".github/flows/tick.yml": null }, { message: "no more ticks" });
    await withStore((store) => setLiveRelease(store, REPO, { sha: next.sha, ref: "main", at: Date.now() }, Date.now()));

    // ---- drain: every delivery's run, and every run, ends -------------------------------------
    const drainStart = Date.now();
    const accepted = sent.filter((d) => d.acceptedBy).length;
    let settled = 0;
    while (Date.now() - drainStart < DRAIN_MS && settled < 3) {
      await sleep(500);
      const rows = await ask<{ active: string; fault: string }>(
        `SELECT count(*) FILTER (WHERE status NOT IN ('succeeded','failed','cancelled','timed_out')) AS active, count(*) FILTER (WHERE flow = 'fault') AS fault FROM runs`,
      );
      const done = rows && Number(rows[0]!.active) === 0 && Number(rows[0]!.fault) >= accepted;
      settled = done ? settled + 1 : 0;
    }
    approving = false;
    await approver;
    stopping = true;
    // The servers stop cleanly on SIGTERM.
    await Promise.all(
      ready().map(async (s) => {
        s.child.kill("SIGTERM");
        const stopped = await Promise.race([s.exited.then(() => true), sleep(15_000).then(() => false)]);
        if (!stopped) {
          problems.push(`server ${s.slot} did not stop within 15 s of SIGTERM`);
          await kill(s);
        } else if (s.child.exitCode !== 0) problems.push(`server ${s.slot} stopped with exit code ${s.child.exitCode}: ${s.stderr.slice(-800)}`);
      }),
    );
    for (const s of servers) if (s && s.child.exitCode === null && s.child.signalCode === null) await kill(s);
    problems.push(...deaths);
    // A server that lives on with a loop stopped has died of the restart all the same.
    for (const line of loopsStopped) problems.push(line);
    problems.push(...decisions.cliCrashes.map((c) => `the CLI crashed deciding a gate: ${c}`));

    // ---- checks -----------------------------------------------------------------------------------
    const figures = await withStore(async (store) => {
      const runs = await store.listRuns({ repo: REPO, limit: 100_000 });
      const journals = new Map<string, JournalEvent[]>();
      for (const r of runs) journals.set(r.id, (await store.loadJournal(r.id)).map((s) => s.event));
      const created = (id: string) => journals.get(id)![0] as Extract<JournalEvent, { type: "run_created" }>;
      const kv = kvNamespace(REPO, "live");

      // Deliveries: each accepted one started exactly one run; ticks: one run each at most.
      const inbox = await deliveryStates();
      for (const d of sent) {
        if (!d.acceptedBy) problems.push(`delivery ${d.deliveryId} was never accepted (${d.tries} tries)`);
        const mine = runs.filter((r) => r.flow === "fault" && deliveryOf(created(r.id)) === d.n);
        if (d.acceptedBy && mine.length !== 1) problems.push(`delivery ${d.deliveryId} started ${mine.length} runs (${mine.map((r) => r.id).join(", ")})${mine.length ? "" : `; in the inbox: ${inbox.get(d.deliveryId) ?? "?"}`}`);
      }
      const tickRuns = runs.filter((r) => r.flow === "tick");
      if (tickRuns.length === 0) problems.push("the schedule started no run");
      const ticks = new Map<string, string[]>();
      for (const r of tickRuns) {
        const at = String((created(r.id).trigger.event as { at?: unknown } | undefined)?.at);
        ticks.set(at, [...(ticks.get(at) ?? []), r.id]);
      }
      for (const [at, ids] of ticks) if (ids.length > 1) problems.push(`schedule tick ${at} started ${ids.length} runs (${ids.join(", ")})`);

      // Every run ended, and succeeded.
      for (const r of runs) {
        if (!isTerminal(r.status)) problems.push(`run ${r.id} (${r.flow}) did not end: ${r.status}`);
        else if (r.status !== "succeeded") {
          const last = journals.get(r.id)!.at(-1) as { error?: { code?: string; message?: string } };
          problems.push(`run ${r.id} (${r.flow}) ended ${r.status}: ${last.error?.code ?? ""} ${last.error?.message ?? ""}`);
        }
      }

      // Executions counted outside Sluice.
      const keys = new Map<string, number>();
      for (const q of peer.requests) {
        const k = String(q.headers["idempotency-key"]);
        keys.set(k, (keys.get(k) ?? 0) + 1);
      }
      // A read's start is not fsynced (SPEC §4): a database crash may lose it, and the read then
      // runs again under the same attempt. A write's start is fsynced: its attempt never repeats.
      const isRead = (k: string) => Object.values(PEER_READS).flat().includes(k.split(":")[1] ?? "");
      let readsRerun = 0;
      for (const [k, count] of keys) {
        if (count <= 1) continue;
        if (isRead(k)) readsRerun += count - 1;
        else problems.push(`attempt ${k} reached the peer ${count} times`);
      }
      let total = 0;
      for (const r of runs) {
        const events = journals.get(r.id)!;
        const succeeded = (step: string) => events.find((e): e is Extract<JournalEvent, { type: "step_succeeded" }> => e.type === "step_succeeded" && e.step === step);
        const reached = (step: string) => events.some((e) => "step" in e && e.step === step);
        for (const step of [...(PEER_READS[r.flow] ?? []), ...(PEER_WRITES[r.flow] ?? [])]) {
          const mine = [...keys.keys()].filter((k) => k.startsWith(`${r.id}:${step}:`));
          const done = succeeded(step);
          if (done) {
            if (!keys.has(`${r.id}:${step}:${done.attempt}`)) problems.push(`${r.id}/${step} succeeded at attempt ${done.attempt}, which never reached the peer`);
            const after = mine.filter((k) => Number(k.split(":")[2]) > done.attempt);
            if (after.length) problems.push(`${r.id}/${step} ran again after its recorded success: ${after.join(", ")}`);
          }
          // A write takes effect once: an unknown outcome was skipped when the peer had it.
          if ((PEER_WRITES[r.flow] ?? []).includes(step) && reached(step) && mine.length !== 1) problems.push(`write ${r.id}/${step} reached the peer ${mine.length} times (${mine.join(", ")}); its journal: ${trace(events, step)}`);
        }
        if (r.flow === "fault" && reached("record")) {
          const row = ledger.prepare("SELECT n FROM ledger WHERE run = ? AND step = 'record'").get(r.id) as { n: number } | undefined;
          if (row?.n !== 1) problems.push(`db step ${r.id}/record wrote the ledger ${row?.n ?? 0} times; its journal: ${trace(events, "record")}`);
        }
        const expected = (KV_STEPS[r.flow] ?? []).length;
        const counted = (await store.kvGet(kv, `runs/${r.id}`, Date.now()))?.value;
        if (r.status === "succeeded" && counted !== expected) {
          problems.push(`kv runs/${r.id} is ${String(counted)}, not ${expected}: a kv increment was lost or repeated; its journal: ${(KV_STEPS[r.flow] ?? []).map((step) => `${step}: ${trace(events, step)}`).join("; ")}`);
        }
        if (r.flow === "fault" && succeeded("total")) total++;
      }
      const totalKv = (await store.kvGet(kv, "total", Date.now()))?.value;
      if ((totalKv ?? 0) !== total) problems.push(`kv total is ${String(totalKv)}, but ${total} runs recorded its increment`);

      // The longest a run stood still while it was due: from one event to the next, leaving out
      // a person's decision (the approver's pace) and a sleep's own length.
      let stall = { ms: 0, where: "" };
      for (const [id, events] of journals) {
        for (let i = 1; i < events.length; i++) {
          const prev = events[i - 1]!;
          const cur = events[i]!;
          if (cur.type === "approval_received" || cur.type === "approval_refused") continue;
          let gap = cur.at - prev.at;
          if (prev.type === "timer_started") gap = cur.at - Math.max(prev.at, prev.until);
          if (gap > stall.ms) stall = { ms: gap, where: `${id} (${runs.find((r) => r.id === id)?.flow}) from ${prev.type} to ${cur.type}` };
        }
      }
      return { runs: runs.length, fault: runs.filter((r) => r.flow === "fault").length, ticks: tickRuns.length, stall, readsRerun };
    });

    const summary = {
      runs: figures.runs,
      "runs from deliveries (labels, /run)": figures.fault,
      "runs from schedule ticks": figures.ticks,
      "deliveries sent": sent.length,
      "deliveries redelivered to another server": redeliveries,
      "delivery requests (with resends after a kill or an outage)": sent.reduce((n, d) => n + d.tries, 0),
      "servers started": starts,
      "servers that died by themselves": deaths.length,
      "server loops that stopped": loopsStopped.length,
      "SIGKILLs": kills,
      "PostgreSQL restarts": restarts.map((r) => `${r.mode}, down ${r.downMs} ms, back after ${r.tookMs} ms`),
      "read attempts run again after a database crash (allowed: SPEC §4)": figures.readsRerun,
      "gates approved from the CLI": decisions.approvals,
      "unknown outcomes retried": Object.fromEntries(decisions.unknownRetried),
      "unknown outcomes skipped (the target had it)": Object.fromEntries(decisions.unknownSkipped),
      "CLI decisions run": decisions.cliRuns,
      "load (s)": Math.round(loadMs / 100) / 10,
      "whole test (s)": Math.round((Date.now() - started) / 100) / 10,
      "longest stall of a due run (ms)": figures.stall.ms,
      "where": figures.stall.where,
      problems: problems.length,
    };
    console.log(`fault test figures:\n${JSON.stringify(summary, null, 2)}`);
    expect(problems).toEqual([]);
  }, 170_000);
});
