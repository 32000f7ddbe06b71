/**
 * `sluice worker` in local mode: the callback URL a local run hands out works (the worker serves
 * `POST /callbacks/<token>` on SLUICE_WORKER_PORT, where local mode points callback URLs), it logs
 * one line per step transition, and it runs the live release's schedules, each tick once even
 * with two workers on one store. Real processes, a real HTTP peer, real requests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, sluiceAsync } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";
import { sendJson, startHttpPeer, type HttpPeer } from "../support/http-peer.js";
import { freePort } from "../support/net.js";

let repo: TestRepo;
let peer: HttpPeer;
let env: Record<string, string>;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  peer = await startHttpPeer((req, res) => sendJson(res, 200, { got: req.url.searchParams.get("cb") }));
  repo = makeRepo({
    ".github/sluice.yml": `connections:\n  peer: { type: http, base_url: "${peer.origin}" }\n`,
    ".github/flows/handoff.yml": `on: { manual: {} }
steps:
  - id: hand
    http: { connection: peer, url: /start, query: { cb: "\${{ callbacks.hold.url }}" } }
  - id: hold
    wait: { callback: { schema: { type: object, required: [ok], properties: { ok: { type: boolean } } } } }
outputs:
  ok: \${{ steps.hold.outputs.body.ok }}
`,
    ".github/flows/tick.yml": `on:
  schedule:
    - cron: "* * * * * *"
      timezone: Europe/Berlin
steps:
  - id: beat
    function: { code: "return 1" }
`,
  });
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_USER: "alice" };
});

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill("SIGKILL");
  await peer.stop();
  repo.remove();
});

interface Worker {
  proc: ChildProcess;
  log: () => string;
  stop: () => Promise<number | null>;
}

async function startWorker(port: number): Promise<Worker> {
  const proc = spawn(process.execPath, [CLI, "worker", "--poll", "200ms"], { cwd: repo.dir, env: { ...process.env, ...env, LOG_LEVEL: "warn", SLUICE_WORKER_PORT: String(port) } });
  workers.push(proc);
  let log = "";
  proc.stderr!.on("data", (d) => (log += d));
  for (let i = 0; i < 200 && !/worker \S+ started/.test(log); i++) await sleep(50);
  expect(log).toMatch(/worker \S+ started/);
  return {
    proc,
    log: () => log,
    stop: () =>
      new Promise((resolve) => {
        proc.once("exit", (code) => resolve(code));
        proc.kill("SIGTERM");
      }),
  };
}

async function until<T>(what: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  let v = await what();
  for (let i = 0; i < 150 && !ok(v); i++) {
    await sleep(100);
    v = await what();
  }
  return v;
}

describe("sluice worker", () => {
  it("serves the callback URL a local run hands out, and logs each step transition", async () => {
    const port = await freePort();
    const run = await sluiceAsync(repo.dir, ["run", "handoff", "--json"], { ...env, SLUICE_WORKER_PORT: String(port) });
    expect(run.code).toBe(3);
    const id = run.json.data.id as string;
    const url = peer.requests.at(-1)!.url.searchParams.get("cb")!;
    expect(url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${port}/callbacks/[A-Za-z0-9_-]{20,}$`));

    const worker = await startWorker(port);
    const post = (u: string, body: unknown) => fetch(u, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const invalid = await post(url, { ok: "yes" });
    expect(invalid.status).toBe(422);
    const first = await post(url, { ok: true });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ ok: true, run: id, step: "hold", duplicate: false });
    const again = await post(url, { ok: false });
    expect(await again.json()).toMatchObject({ ok: true, duplicate: true });
    expect((await post(`http://127.0.0.1:${port}/callbacks/not-a-token`, {})).status).toBe(404);
    // Only callbacks: no run page, no API on the worker's port.
    expect((await fetch(`http://127.0.0.1:${port}/runs/${id}`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/api/v1/runs`)).status).toBe(404);

    const done = await until(() => sluiceAsync(repo.dir, ["runs", "show", id, "--json"], env), (r) => r.json?.data.status === "succeeded");
    expect(done.json.data).toMatchObject({ status: "succeeded", outputs: { ok: true } });
    await until(async () => worker.log(), (l) => l.includes(`${id} run handoff succeeded`));
    expect(await worker.stop()).toBe(0);
    const lines = worker.log().split("\n");
    expect(lines.filter((l) => l.includes(`${id} handoff ✓ hold wait succeeded`))).toHaveLength(1);
    expect(lines.filter((l) => l.includes(`${id} run handoff succeeded`))).toHaveLength(1);
  });

  it("flows list shows each schedule with its next times in its time zone", async () => {
    const list = await sluiceAsync(repo.dir, ["flows", "list", "--json"], env);
    const tick = list.json.data.flows.find((f: { name: string }) => f.name === "tick");
    expect(tick.schedules).toHaveLength(1);
    const s = tick.schedules[0];
    expect(s).toMatchObject({ cron: "* * * * * *", timezone: "Europe/Berlin" });
    expect(s.next).toHaveLength(3);
    const times = s.next.map((t: string) => Date.parse(t));
    expect(times[1] - times[0]).toBe(1000);
    const text = (await sluiceAsync(repo.dir, ["flows", "list"], env)).stdout;
    expect(text).toMatch(/tick: \* \* \* \* \* \* \(Europe\/Berlin\) next \d{4}-\d\d-\d\d \d\d:\d\d:\d\d (CET|CEST|GMT\+[12])/);
  });

  it("runs the live release's schedules: each tick once, with two workers on one store", async () => {
    const [a, b] = [await startWorker(await freePort()), await startWorker(await freePort())];
    const runs = await until(
      () => sluiceAsync(repo.dir, ["runs", "list", "--flow", "tick", "--status", "succeeded", "--limit", "200", "--json"], env),
      (r) => (r.json?.data.runs.length ?? 0) >= 4,
    );
    expect([await a.stop(), await b.stop()]).toEqual([0, 0]);
    expect(runs.json.data.runs.length).toBeGreaterThanOrEqual(4);
    const all = (await sluiceAsync(repo.dir, ["runs", "list", "--flow", "tick", "--limit", "200", "--json"], env)).json.data.runs as { id: string }[];
    const ticks: string[] = [];
    for (const r of all) {
      const created = (await sluiceAsync(repo.dir, ["runs", "events", r.id, "--json"], env)).json.data.events[0];
      expect(created.trigger).toMatchObject({ type: "schedule", actor: "sluice:schedule", event: { schedule: "* * * * * *", timezone: "Europe/Berlin" } });
      ticks.push(created.trigger.event.at);
    }
    expect(new Set(ticks).size).toBe(ticks.length);
    // Both workers logged transitions, and no run was started twice.
    expect(`${a.log()}${b.log()}`).toMatch(/tick ✓ beat function succeeded/);
  });
});
