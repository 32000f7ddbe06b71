/**
 * Throughput: 200 runs of 10 `kv get` steps, all queued at once, worked by `sluice worker`
 * processes (the built CLI, as users run it): one on SQLite, one and two on PostgreSQL. Steps
 * per second from the first run's start to the last run's end, by the journals' clocks (process
 * start-up left out; the wall time with it is shown too). DBOS Transact: 200 workflows of 10
 * reading steps started at once in one process, on the same PostgreSQL server.
 */
import type { Context, Section, TargetCheck } from "./lib/context.js";
import { count, ms, table, timed, times } from "./lib/measure.js";
import { allEnded, assertSucceeded, createRun, kvFlow, openBench, spawnCli, stop, type StoreKind } from "./lib/sluice.js";

const RUNS = 200;
const STEPS = 10;

interface Result {
  label: string;
  creating: number;
  wall: number;
  span: number;
}

async function sluiceCase(ctx: Context, kind: StoreKind, workers: number): Promise<Result> {
  const label = `Sluice, ${kind}, ${workers} \`sluice worker\` process${workers > 1 ? "es" : ""}`;
  ctx.log(`throughput: ${label}`);
  const target = await ctx.ws.target(kind, "throughput");
  const b = await openBench(target);
  try {
    const flow = kvFlow(STEPS);
    const ids: string[] = [];
    const creating = (await timed(async () => {
      for (let i = 0; i < RUNS; i++) ids.push(await createRun(b.runtime, flow));
    })).ms;
    const t = performance.now();
    const procs = Array.from({ length: workers }, () => spawnCli(ctx.ws, target, ["worker"]));
    try {
      await allEnded(b.store, 300_000).catch((e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)}; the workers said:\n${procs.map((p) => p.stderr().slice(-2000)).join("\n")}`);
      });
    } finally {
      await Promise.all(procs.map((p) => stop(p)));
    }
    const wall = performance.now() - t;
    await assertSucceeded(b.store, ids);
    let first = Infinity;
    let last = 0;
    for (const id of ids) {
      const events = (await b.store.loadJournal(id)).map((s) => s.event);
      first = Math.min(first, events[1]?.at ?? Infinity);
      last = Math.max(last, events.at(-1)!.at);
    }
    return { label, creating, wall, span: last - first };
  } finally {
    await b.close();
  }
}

export async function throughput(ctx: Context): Promise<Section> {
  const sqlite = await sluiceCase(ctx, "SQLite", 1);
  const pg1 = await sluiceCase(ctx, "PostgreSQL", 1);
  const pg2 = await sluiceCase(ctx, "PostgreSQL", 2);
  ctx.log("throughput: DBOS");
  const dbos = await ctx.dbos();
  await dbos.many(20, STEPS); // warm up
  const dbosMs = (await timed(() => dbos.many(RUNS, STEPS))).ms;
  const total = RUNS * STEPS;
  const rate = (span: number) => (total / span) * 1000;
  const dbosRate = rate(dbosMs);
  const rows = [sqlite, pg1, pg2].map((r) => [r.label, ms(r.creating), ms(r.span), ms(r.wall), count(rate(r.span)), times(rate(r.span) / dbosRate)]);
  rows.push(["DBOS Transact, PostgreSQL, 1 process (this one)", "–", ms(dbosMs), ms(dbosMs), count(dbosRate), "1.00x"]);
  const body = [
    `${RUNS} runs x ${STEPS} \`kv get\` steps, created (queued) first, then worked. "first start → last end" comes from the journals (the worker processes' clocks); "wall" adds the workers' start-up.`,
    "",
    table([["setup", `creating ${RUNS} runs`, "first start → last end", "wall", "steps/s", "vs DBOS"], ...rows]),
  ].join("\n");
  const targets: TargetCheck[] = [
    { measure: "throughput 200 x 10, SQLite, one process", figure: `${count(rate(sqlite.span))} steps/s`, target: ">= 5,000 steps/s", met: rate(sqlite.span) >= 5000, by: `${times(5000 / rate(sqlite.span))} short` },
    { measure: "throughput 200 x 10, PostgreSQL, one process, against DBOS", figure: `${count(rate(pg1.span))} vs ${count(dbosRate)} steps/s`, target: "ahead of DBOS", met: rate(pg1.span) > dbosRate, by: `DBOS ${times(dbosRate / rate(pg1.span))} ahead` },
    { measure: "throughput 200 x 10, PostgreSQL, two processes, against DBOS", figure: `${count(rate(pg2.span))} vs ${count(dbosRate)} steps/s`, target: "ahead of DBOS", met: rate(pg2.span) > dbosRate, by: `DBOS ${times(dbosRate / rate(pg2.span))} ahead` },
  ];
  return { title: "Throughput: 200 runs x 10 steps", body, targets };
}
