/**
 * Approve → next step started, on SQLite and PostgreSQL:
 *  - in process: the approval is decided by the process that runs the worker loop (as the
 *    server does for a decision it receives), which then runs the next step itself;
 *  - across processes: a `sluice worker` process works the runs; this process only records the
 *    approvals (as a server or the CLI records one that another process is to act on), and the
 *    worker has to notice. Approvals go out 150–250 ms apart.
 * From just before the decision to the next step's `step_started` (by this process's clock in
 * process; by the journal's, written by the worker on the same machine, across processes).
 */
import type { Runtime } from "../src/app/runtime.js";
import { decideGate } from "../src/app/signals.js";
import type { Context, Section, TargetCheck } from "./lib/context.js";
import { ms, quantile, sleep, table, until } from "./lib/measure.js";
import { allEnded, createRun, eventTimes, gateFlow, openBench, spawnCli, stop, workerStarted, type StoreKind } from "./lib/sluice.js";

const APPROVE = { login: "bob", via: "cli", decision: "approve" } as const;

async function waitingRuns(rt: Runtime, n: number): Promise<string[]> {
  const flow = gateFlow();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const id = await createRun(rt, flow);
    await rt.advance(id);
    ids.push(id);
  }
  return ids;
}

async function inProcess(ctx: Context, kind: StoreKind, n: number): Promise<number[]> {
  const target = await ctx.ws.target(kind, "approve-in");
  const b = await openBench(target);
  const controller = new AbortController();
  try {
    const ids = await waitingRuns(b.runtime, n);
    const loop = b.runtime.work(controller.signal);
    const started = new Map<string, number>();
    b.runtime.onEvents((id, events) => {
      if (events.some((e) => e.type === "step_started" && e.step === "next") && !started.has(id)) started.set(id, performance.now());
    });
    const latencies: number[] = [];
    for (const id of ids) {
      const t0 = performance.now();
      await decideGate(b.runtime, id, APPROVE);
      const t1 = await until(`the step after the gate of ${id}`, () => started.get(id), 30_000, 1);
      latencies.push(t1 - t0);
      await sleep(Math.random() * 20);
    }
    controller.abort();
    await loop;
    return latencies;
  } finally {
    controller.abort();
    await b.close();
  }
}

async function acrossProcesses(ctx: Context, kind: StoreKind, n: number): Promise<number[]> {
  const target = await ctx.ws.target(kind, "approve-across");
  const b = await openBench(target);
  try {
    const ids = await waitingRuns(b.runtime, n);
    const decidedAt = new Map<string, number>();
    const worker = spawnCli(ctx.ws, target, ["worker"]);
    try {
      await workerStarted(worker, 1_000);
      // Records the decision and leaves the run to whoever works it (the worker).
      const recordOnly = Object.assign(Object.create(b.runtime) as Runtime, { advance: async () => true });
      for (const id of ids) {
        decidedAt.set(id, Date.now());
        await decideGate(recordOnly, id, APPROVE);
        await sleep(150 + Math.random() * 100);
      }
      await allEnded(b.store, 120_000);
    } finally {
      await stop(worker);
    }
    const started = await eventTimes(b.store, ids, (e) => e.type === "step_started" && e.step === "next");
    return ids.map((id) => started.get(id)! - decidedAt.get(id)!);
  } finally {
    await b.close();
  }
}

export async function approve(ctx: Context): Promise<Section> {
  const inN = ctx.quick ? 20 : 100;
  const acrossN = ctx.quick ? 15 : 60;
  const rows: string[][] = [];
  const targets: TargetCheck[] = [];
  for (const kind of ["SQLite", "PostgreSQL"] as const) {
    ctx.log(`approve → next step: ${kind}`);
    const inside = await inProcess(ctx, kind, inN);
    const across = await acrossProcesses(ctx, kind, acrossN);
    rows.push([`${kind}, in process`, String(inside.length), ms(quantile(inside, 0.5)), ms(quantile(inside, 0.99)), ms(Math.max(...inside))]);
    rows.push([`${kind}, across processes`, String(across.length), ms(quantile(across, 0.5)), ms(quantile(across, 0.99)), ms(Math.max(...across))]);
    const p50 = quantile(across, 0.5);
    targets.push({ measure: `approve in one process, run continues in another, ${kind}: p50`, figure: ms(p50), target: "<= 50 ms", met: p50 <= 50, by: `${(p50 / 50).toFixed(1)}x over` });
  }
  const body = [
    `In process: the process running the worker loop decides the gate and runs the next step itself (${inN} approvals, one after another). Across processes: a \`sluice worker\` process works the runs and this process records the approvals, 150–250 ms apart (${acrossN} approvals); the worker runs with its defaults. Across processes the time comes from the journal, to the millisecond.`,
    "",
    table([["approve → next step started", "approvals", "p50", "p99", "max"], ...rows]),
  ].join("\n");
  return { title: "Approve → next step started", body, targets };
}
