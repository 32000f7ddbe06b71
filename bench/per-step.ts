/**
 * Per-step overhead: one run of N `kv get` steps, created and advanced to its end in this
 * process (no worker loop, no other load), on SQLite and on PostgreSQL; DBOS Transact runs a
 * workflow of N steps that each read one row, on the same PostgreSQL server. Each figure is the
 * median time of the whole run divided by N, set against the yardstick transaction of its store.
 * Then what a step costs PostgreSQL (statements and write transactions), and CPU profiles of the
 * 200-step runs.
 */
import type { Context, Section, TargetCheck } from "./lib/context.js";
import { DBOS_DATABASES } from "./lib/dbos.js";
import { median, ms, table, timed, times } from "./lib/measure.js";
import { costOf, databaseOf, type PgCost } from "./lib/pg-stats.js";
import { profiled, type ProfileSummary } from "./lib/profile.js";
import { createRun, kvFlow, openBench, type Bench, type StoreKind } from "./lib/sluice.js";

const SIZES = [1, 50, 200, 800] as const;

function repsOf(n: number, quick: boolean): number {
  const full = n === 1 ? 20 : n === 50 ? 10 : n === 200 ? 5 : 3;
  return quick ? Math.max(1, Math.ceil(full / 4)) : full;
}

/** Median milliseconds of `run` at each size. */
async function series(quick: boolean, run: (n: number) => Promise<unknown>): Promise<Map<number, number>> {
  await run(20); // warm up: the JIT, the statement caches, the connections
  const out = new Map<number, number>();
  for (const n of SIZES) {
    const samples: number[] = [];
    for (let r = 0; r < repsOf(n, quick); r++) samples.push((await timed(() => run(n))).ms);
    out.set(n, median(samples));
  }
  return out;
}

const sluiceRun = (b: Bench) => async (n: number) => {
  const id = await createRun(b.runtime, kvFlow(n));
  await b.runtime.advance(id);
  const r = await b.store.getRun(id);
  if (r?.status !== "succeeded") throw new Error(`a ${n}-step run ended ${r?.status}`);
};

/** Cost per step of steps 201–800 against steps 1–200: 1.0 is flat. */
const growth = (t: Map<number, number>) => (t.get(800)! - t.get(200)!) / 600 / (t.get(200)! / 200);

function profileTable(title: string, p: ProfileSummary): string {
  return [
    `**${title}**: ${ms(p.totalMs)} sampled; idle (waiting for I/O) ${(p.idle * 100).toFixed(0)}%, garbage collection ${(p.gc * 100).toFixed(1)}%.`,
    "",
    table([["function (self time)", "where", "share"], ...p.top.map((t) => [`\`${t.fn}\``, `\`${t.where}\``, `${(t.share * 100).toFixed(1)}%`])]),
  ].join("\n");
}

export async function perStep(ctx: Context): Promise<Section[]> {
  const y = ctx.yard;
  const results = new Map<StoreKind, Map<number, number>>();
  const profiles: string[] = [];
  let sluiceCost: PgCost | undefined;
  for (const kind of ["SQLite", "PostgreSQL"] as const) {
    ctx.log(`per step: Sluice on ${kind}`);
    const target = await ctx.ws.target(kind, "per-step");
    const b = await openBench(target);
    try {
      results.set(kind, await series(ctx.quick, sluiceRun(b)));
      if (kind === "PostgreSQL") sluiceCost = await costOf(ctx.pgUrl, [databaseOf(target.location)], 200, () => sluiceRun(b)(200));
      profiles.push(profileTable(`Sluice on ${kind}, one run of 200 kv get steps`, (await profiled(() => sluiceRun(b)(200))).summary));
    } finally {
      await b.close();
    }
  }
  ctx.log("per step: DBOS");
  const dbos = await ctx.dbos();
  const dbosTimes = await series(ctx.quick, (n) => dbos.run(n));
  const dbosCost = await costOf(ctx.pgUrl, DBOS_DATABASES, 200, () => dbos.run(200));
  const dbosEmptyCost = await costOf(ctx.pgUrl, DBOS_DATABASES, 200, () => dbos.run(200, "empty"));
  const dbosEmpty = median([(await timed(() => dbos.run(200, "empty"))).ms, (await timed(() => dbos.run(200, "empty"))).ms]) / 200;
  profiles.push(profileTable("DBOS, one workflow of 200 reading steps", (await profiled(() => dbos.run(200))).summary));

  const sqlite = results.get("SQLite")!;
  const postgres = results.get("PostgreSQL")!;
  const per = (t: Map<number, number>, n: number) => t.get(n)! / n;
  const rows = SIZES.map((n) => [
    String(n),
    ms(per(sqlite, n)),
    times(per(sqlite, n) / y.sqliteNormal),
    ms(per(postgres, n)),
    times(per(postgres, n) / y.pgTransaction),
    ms(per(dbosTimes, n)),
    times(per(dbosTimes, n) / y.pgTransaction),
    times(per(postgres, n) / per(dbosTimes, n)),
  ]);
  const body = [
    `One run of N \`kv get\` steps created and advanced to its end in this process; the median of ${repsOf(1, ctx.quick)}, ${repsOf(50, ctx.quick)}, ${repsOf(200, ctx.quick)} and ${repsOf(800, ctx.quick)} runs at N = 1, 50, 200 and 800, divided by N. DBOS: a workflow of N steps that each read one row (\`SELECT value FROM kv WHERE key = $1\`), on the same PostgreSQL server. "x WAL" is against one raw SQLite transaction (\`synchronous=NORMAL\`), "x PG" against one raw PostgreSQL transaction (one INSERT, one round trip), both measured above. The yardsticks wait for their commit to be flushed; records that SPEC §4 lets commit without waiting (those of reads) can bring a step under one yardstick.`,
    "",
    table([["steps", "Sluice SQLite / step", "x WAL", "Sluice PostgreSQL / step", "x PG", "DBOS / step", "x PG", "Sluice PG / DBOS"], ...rows]),
    "",
    `Cost per step as runs grow (steps 201–800 against steps 1–200; 1.00 is flat): Sluice SQLite ${times(growth(sqlite))}, Sluice PostgreSQL ${times(growth(postgres))}, DBOS ${times(growth(dbosTimes))}. DBOS with empty steps (no read): ${ms(dbosEmpty)} per step at N = 200.`,
    "",
    "What a step costs PostgreSQL, at N = 200 (statements executed, BEGIN and COMMIT included: one round trip each with the `pg` driver; write transactions: one durable commit each):",
    "",
    table([
      ["engine", "statements / step", "write transactions / step"],
      ["Sluice (kv get step)", sluiceCost!.statements.toFixed(1), sluiceCost!.writeTransactions.toFixed(2)],
      ["DBOS (reading step)", dbosCost.statements.toFixed(1), dbosCost.writeTransactions.toFixed(2)],
      ["DBOS (empty step)", dbosEmptyCost.statements.toFixed(1), dbosEmptyCost.writeTransactions.toFixed(2)],
    ]),
  ].join("\n");

  const sqliteRatio = per(sqlite, 200) / y.sqliteNormal;
  const vsDbos = per(postgres, 200) / per(dbosTimes, 200);
  const targets: TargetCheck[] = [
    { measure: "per-step overhead, 200 kv get steps, SQLite", figure: `${ms(per(sqlite, 200))} = ${times(sqliteRatio)} one WAL transaction`, target: "<= 10x", met: sqliteRatio <= 10, by: `${times(sqliteRatio / 10)} over` },
    { measure: "cost per step as runs grow (201–800 vs 1–200), SQLite", figure: times(growth(sqlite)), target: "<= 1.25x", met: growth(sqlite) <= 1.25, by: `${times(growth(sqlite) / 1.25)} over` },
    { measure: "cost per step as runs grow (201–800 vs 1–200), PostgreSQL", figure: times(growth(postgres)), target: "<= 1.25x", met: growth(postgres) <= 1.25, by: `${times(growth(postgres) / 1.25)} over` },
    { measure: "PostgreSQL per step (200 steps) against DBOS on the same server", figure: `${ms(per(postgres, 200))} vs ${ms(per(dbosTimes, 200))} (${times(vsDbos)})`, target: "no slower (<= 1x)", met: vsDbos <= 1, by: `${times(vsDbos)} slower` },
  ];
  return [
    { title: "Per-step overhead", body, targets },
    { title: "Profiles", body: ["CPU profiles (V8's sampling profiler, in process) of one 200-step run after the measurements above: the functions with the most self time.", "", ...profiles.flatMap((p) => [p, ""])].join("\n") },
  ];
}
