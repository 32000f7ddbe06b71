/**
 * `npm run bench`: every benchmark of the engine, DBOS Transact side by side, and the scripts
 * that measure the GitHub side and the CLI, in one run on one machine, written to
 * bench/RESULTS.md with the machine, the Node version and the date. Every figure stands next to
 * a yardstick measured in the same run.
 *
 *   npm run bench                          everything but the slow scripts (5–10 minutes)
 *   npm run bench -- --quick               smaller sizes, to try it out (RESULTS.md says so)
 *   npm run bench -- --only per-step,gates one or more sections; RESULTS.md is not written
 *   npm run bench -- --slow                also the scripts that take many minutes (bench/scripts.ts)
 *
 * PostgreSQL: a throwaway server (test/support/postgres.ts) configured to commit durably
 * (fsync on), with pg_stat_statements loaded, shared by Sluice and DBOS.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus, loadavg, release, totalmem, type as osType } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startPostgres } from "../test/support/postgres.js";
import { approve } from "./approve.js";
import { gates } from "./gates.js";
import type { Context, Section } from "./lib/context.js";
import { DBOS_VERSION, launchDbos, type Dbos } from "./lib/dbos.js";
import { ms, table } from "./lib/measure.js";
import { enableStatements } from "./lib/pg-stats.js";
import { Workspace } from "./lib/sluice.js";
import { perStep } from "./per-step.js";
import { scripts } from "./scripts.js";
import { throughput } from "./throughput.js";
import { validate } from "./validate.js";
import { measureYardsticks, yardsticksTable } from "./yardsticks.js";

const { values } = parseArgs({ options: { quick: { type: "boolean" }, slow: { type: "boolean" }, only: { type: "string" } } });
const only = values.only?.split(",").map((s) => s.trim());
const quick = values.quick === true;
const slow = values.slow === true;

const SECTIONS: Record<string, (ctx: Context) => Promise<Section | Section[]>> = {
  "per-step": perStep,
  throughput,
  gates,
  approve,
  validate,
  scripts: (ctx) => scripts({ ...ctx, slow }),
};
for (const name of only ?? []) if (!SECTIONS[name]) throw new Error(`no benchmark section '${name}' (sections: ${Object.keys(SECTIONS).join(", ")})`);
const started = Date.now();
// Other work on the machine moves the figures: RESULTS.md says how busy it was.
const loadAtStart = loadavg()[0]!;
const log = (m: string) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${m}\n`);

function git(...args: string[]): string {
  try {
    return execFileSync("git", args, { cwd: import.meta.dirname, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

log("starting PostgreSQL (durable)");
const server = await startPostgres({ durable: true, maxConnections: 200, settings: { shared_preload_libraries: "pg_stat_statements" } });
const ws = new Workspace(server.url);
let dbos: Promise<Dbos> | undefined;
const sections: Section[] = [];
try {
  await enableStatements(server.url);
  log("yardsticks");
  const yard = await measureYardsticks(ws, server.url, quick);
  const ctx: Context = { pgUrl: server.url, ws, quick, yard, log, dbos: () => (dbos ??= launchDbos(server.url)) };
  for (const [name, run] of Object.entries(SECTIONS)) {
    if (only && !only.includes(name)) continue;
    const out = await run(ctx);
    sections.push(...(Array.isArray(out) ? out : [out]));
  }

  const cpu = cpus();
  const targets = sections.flatMap((s) => s.targets ?? []);
  const commit = git("rev-parse", "--short", "HEAD");
  const dirty = git("status", "--porcelain", "--untracked-files=no") ? " with uncommitted changes" : "";
  const doc = [
    "# Benchmark results",
    "",
    "Written by `npm run bench` (bench/run.ts); do not edit by hand. Every figure was measured in the run below, on the machine below, next to yardsticks measured in the same run. Tests never assert on timing.",
    "",
    table([
      ["", ""],
      ["date", new Date(started).toISOString()],
      ["machine", `${cpu[0]?.model ?? "unknown CPU"}, ${cpu.length} cores, ${Math.round(totalmem() / 1024 ** 3)} GiB, ${osType()} ${release()}`],
      ["Node", process.version],
      ["PostgreSQL", `${yard.pgVersion} (throwaway server on loopback, fsync on, \`synchronous_commit=on\`)`],
      ["SQLite", `${yard.sqliteVersion} (better-sqlite3)`],
      ["DBOS Transact", `@dbos-inc/dbos-sdk ${DBOS_VERSION}`],
      ["Sluice", `${commit}${dirty}`],
      ["sizes", quick ? "**quick** (`--quick`: smaller sizes, fewer repetitions; not the figures to quote)" : "full"],
      ["took", ms(Date.now() - started)],
      ["load average (1 min) at the start and the end", `${loadAtStart.toFixed(2)}, ${loadavg()[0]!.toFixed(2)} (${cpu.length} cores; above ~0.5 at the start, other work shared the machine)`],
    ]),
    "",
    "## Targets (issue 12)",
    "",
    table([["measure", "figure", "target", "verdict"], ...targets.map((t) => [t.measure, t.figure, t.target, t.met ? "met" : `**missed**: ${t.by ?? ""}`])]),
    "",
    "## Yardsticks",
    "",
    yardsticksTable(yard),
    "",
    ...sections.flatMap((s) => [`## ${s.title}`, "", s.body, ""]),
  ].join("\n");
  process.stdout.write(doc);
  if (!only) {
    writeFileSync(join(import.meta.dirname, "RESULTS.md"), doc);
    log("wrote bench/RESULTS.md");
  }
} finally {
  if (dbos) await (await dbos).close();
  ws.close();
  await server.stop();
}
log("done");
// DBOS and pg pools may keep timers: the benchmark is over.
process.exit(0);
