/**
 * How fast the CLI starts: a cold `sluice runs list` (and `validate`, `run`) against a bare
 * `node -e 0`, measured side by side in one process, alternating, on this machine.
 *
 *   npm run build && npx tsx bench/cli-start.ts [iterations]
 *
 * It makes a throwaway repository with 20 flows and 50 finished runs, warms the OS file cache
 * once, then times each command `iterations` times (default 30), interleaved with `node -e 0`
 * so both see the same machine load. Prints the medians, the ratio to `node -e 0` (target for
 * `runs list`: <= 2.5x) and a Markdown table for bench/RESULTS.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";

const CLI = resolve(import.meta.dirname, "../dist/src/cli.js");
const iterations = Number(process.argv[2] ?? 30);

const dir = mkdtempSync(join(tmpdir(), "sluice-bench-start-"));
const git = (...args: string[]) =>
  execFileSync("git", args, { cwd: dir, env: { ...process.env, GIT_AUTHOR_NAME: "b", GIT_AUTHOR_EMAIL: "b@b.invalid", GIT_COMMITTER_NAME: "b", GIT_COMMITTER_EMAIL: "b@b.invalid" } });
git("init", "-q", "-b", "main");
mkdirSync(join(dir, ".github/flows"), { recursive: true });
for (let i = 0; i < 20; i++) {
  writeFileSync(
    join(dir, `.github/flows/flow-${i}.yml`),
    `on: { manual: { inputs: { n: { type: number, default: ${i} } } } }\nsteps:\n  - id: count\n    kv: { incr: { key: c${i}, by: "\${{ inputs.n }}" } }\n  - id: done\n    function: { code: "return 1" }\n`,
  );
}
git("add", "-A");
git("commit", "-q", "-m", "flows");

const env: NodeJS.ProcessEnv = { ...process.env, SLUICE_USER: "bench", LOG_LEVEL: "warn" as const, NO_COLOR: "1" };
const cli = (args: string[]) => {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: dir, env, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`sluice ${args.join(" ")} exited ${r.status}: ${r.stderr}`);
};
for (let i = 0; i < 50; i++) cli(["run", `flow-${i % 20}`]);

function time(cmd: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd: dir, env, stdio: "ignore" });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const cases: [string, string[]][] = [
  ["node -e 0", [process.execPath, "-e", "0"]],
  ["sluice runs list", [process.execPath, CLI, "runs", "list"]],
  ["sluice validate", [process.execPath, CLI, "validate"]],
  ["sluice run flow-1", [process.execPath, CLI, "run", "flow-1"]],
  ["sluice --help", [process.execPath, CLI, "--help"]],
];
for (const [, cmd] of cases) time(cmd); // warm the file cache
const samples = new Map<string, number[]>(cases.map(([name]) => [name, []]));
for (let i = 0; i < iterations; i++) for (const [name, cmd] of cases) samples.get(name)!.push(time(cmd));

const base = median(samples.get("node -e 0")!);
const rows = cases.map(([name]) => {
  const m = median(samples.get(name)!);
  return { name, median: m, ratio: m / base };
});
rmSync(dir, { recursive: true, force: true });

console.log(`CLI start, ${iterations} iterations each, interleaved; ${cpus()[0]?.model ?? "?"} x${cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
console.log("");
console.log("| command | median | x `node -e 0` |");
console.log("|---|---:|---:|");
for (const r of rows) console.log(`| \`${r.name}\` | ${r.median.toFixed(1)} ms | ${r.ratio.toFixed(2)} |`);
const list = rows.find((r) => r.name === "sluice runs list")!;
console.log("");
console.log(`runs list: ${list.ratio.toFixed(2)}x node -e 0 (target <= 2.5x): ${list.ratio <= 2.5 ? "met" : "missed"}`);
