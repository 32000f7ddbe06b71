/**
 * 20,000 runs waiting at gates: one `sluice worker` process on PostgreSQL (the engine's loop,
 * the same Runtime `sluice serve` runs) takes 20,000 runs created by this process to their
 * approval gates. Its resident memory idle (started, no runs) against its memory once every
 * run waits and a few polling rounds have passed: what waiting runs cost a server. Then a worker
 * started afresh, every run waiting; and the live heaps of both after a full collection: what
 * the first worker keeps of its work.
 */
import type { Context, Section, TargetCheck } from "./lib/context.js";
import { count, mb, ms, pool, sleep, table, timed } from "./lib/measure.js";
import { allEnded, createRun, gateFlow, HEAP_SNAPSHOTS, liveHeapOf, memoryOf, openBench, spawnCli, stop, workerStarted } from "./lib/sluice.js";

export async function gates(ctx: Context): Promise<Section> {
  const n = ctx.quick ? 2_000 : 20_000;
  ctx.log(`gates: ${n} runs waiting`);
  const target = await ctx.ws.target("PostgreSQL", "gates");
  const b = await openBench(target);
  const worker = spawnCli(ctx.ws, target, ["worker"], HEAP_SNAPSHOTS);
  try {
    // Idle: started, its connections made, 3 s to settle.
    await workerStarted(worker, 3_000);
    const idle = memoryOf(worker.child.pid!);
    const flow = gateFlow();
    const started = performance.now();
    const creating = (await timed(() => pool(16, Array.from({ length: n }), () => createRun(b.runtime, flow)))).ms;
    await allEnded(b.store, 900_000, ["queued", "running"]);
    const toGates = performance.now() - started;
    const waiting = (await b.store.listRuns({ status: ["waiting"], limit: n + 1 })).length;
    if (waiting !== n) throw new Error(`${waiting} of ${n} runs wait at their gate`);
    await sleep(5_000);
    const loaded = memoryOf(worker.child.pid!);
    const beyond = loaded.rss - idle.rss;
    // Last: a heap snapshot grows the process's memory.
    const loadedHeap = await liveHeapOf(ctx.ws, worker);
    // What is kept, not what the work left in the heap: a worker started now, with every run waiting.
    await stop(worker);
    const fresh = spawnCli(ctx.ws, target, ["worker"], HEAP_SNAPSHOTS);
    let restarted: { rss: number };
    let freshHeap: number;
    try {
      await workerStarted(fresh, 5_000);
      restarted = memoryOf(fresh.child.pid!);
      freshHeap = await liveHeapOf(ctx.ws, fresh);
    } finally {
      await stop(fresh);
    }
    const body = [
      `${count(n)} runs of a flow whose first step is an approval gate, created by this process (16 at a time) on a fresh PostgreSQL database and taken to their gates by one \`sluice worker\` process; its memory is read from \`/proc\` (resident set), idle 3 s after it started, then 5 s after the last run reached its gate. "Beyond idle" includes what the work left in the heap (V8 keeps what it grew to); a worker started afresh once every run waits shows what the waiting runs cost a server that restarts, and the live heaps of both after a full collection (heap snapshots, taken after the memory readings) show what the work left behind.`,
      "",
      table([
        ["measure", "value"],
        ["worker idle (no runs)", mb(idle.rss)],
        [`worker with ${count(n)} runs waiting`, mb(loaded.rss)],
        ["**beyond idle**", `**${mb(beyond)}**`],
        ["worker's peak while opening the gates", mb(loaded.peak)],
        ["live heap after a full collection: this worker, a worker started afresh", `${mb(loadedHeap)}, ${mb(freshHeap)} (**${mb(loadedHeap - freshHeap)} kept** by the work)`],
        [`a worker started afresh with ${count(n)} runs waiting, 5 s in, beyond idle`, mb(restarted.rss - idle.rss)],
        [`creating ${count(n)} runs`, ms(creating)],
        ["first run created → every run at its gate", ms(toGates)],
        ["runs taken to their gates per second", count((n / toGates) * 1000)],
      ]),
    ].join("\n");
    const targets: TargetCheck[] = [
      { measure: `${count(n)} runs waiting at gates: worker memory beyond idle`, figure: `${mb(beyond)} resident (live heap kept by the work: ${mb(loadedHeap - freshHeap)}; a worker started afresh: ${mb(restarted.rss - idle.rss)})`, target: "< 50 MB", met: beyond < 50 * 1024 * 1024, by: `${mb(beyond - 50 * 1024 * 1024)} over` },
    ];
    return { title: `${count(n)} runs waiting at gates`, body, targets };
  } finally {
    await stop(worker);
    await b.close();
  }
}
