/**
 * `sluice validate` of 1,000 flow files (the built CLI, a process of its own, as in CI): each
 * file ~14 steps of every common kind with expressions, conditions, gates and outputs. Against
 * `sluice validate` of one file (the command's own start-up) and `node -e 0`.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Context, Section } from "./lib/context.js";
import { median, ms, table, times } from "./lib/measure.js";
import { CLI } from "./lib/sluice.js";

function flowText(i: number): string {
  return `# yaml-language-server: $schema=../../schemas/flow.schema.json
name: flow-${String(i).padStart(4, "0")}
description: Benchmark flow ${i}.
on:
  manual:
    inputs:
      target: { type: string, required: true, description: What to work on }
      dry_run: { type: boolean, default: false }
  schedule:
    - cron: "${i % 60} ${i % 24} * * 1-5"
      timezone: Europe/Berlin
concurrency: { group: "flow-${i}-\${{ inputs.target }}", on_conflict: queue }
timeout: 2h
steps:
  - id: fetch
    http: { url: "https://api.example.com/items/\${{ inputs.target }}", query: { page: "${i}" } }
    retry: { max_attempts: 3, backoff: exponential, initial: 1s, max: 30s }
  - id: count
    kv: { incr: { key: "seen-\${{ inputs.target }}", by: 1 } }
  - id: previous
    kv: { get: "last-\${{ inputs.target }}" }
  - id: shape
    function:
      code: "return { n: input.items.length, first: input.items[0] }"
      input: { items: "\${{ steps.fetch.outputs.body.items }}" }
  - id: pause
    if: \${{ steps.count.outputs.value > 3 }}
    sleep: 10s
  - id: review
    if: \${{ !inputs.dry_run }}
    wait:
      approval:
        title: "Apply \${{ steps.shape.outputs.result.n }} changes to \${{ inputs.target }}?"
        evidence: ["\${{ steps.shape.outputs.result }}", "\${{ steps.previous.outputs.value }}"]
        approvers: { users: [alice, bob], min: 1 }
        timeout: 1h
        escalate: [{ after: 30m, approvers: { users: [carol] } }]
  - id: apply
    http: { method: POST, url: "https://api.example.com/apply", body: { target: "\${{ inputs.target }}", items: "\${{ steps.shape.outputs.result }}" } }
  - id: remember
    kv: { set: { key: "last-\${{ inputs.target }}", value: "\${{ steps.apply.outputs.body }}" } }
  - id: callback
    wait: { callback: { timeout: 30m } }
  - id: check
    function: { code: "return input.ok === true", input: { ok: "\${{ steps.callback.outputs.body.ok }}" } }
  - id: tell
    if: \${{ always() }}
    notify: { github_comment: { body: "Run \${{ run.id }} on \${{ inputs.target }}: \${{ steps.check.outputs.result }}" } }
  - id: tally
    kv: { incr: { key: applied, by: "\${{ steps.shape.outputs.result.n }}" } }
  - id: done
    function: { code: "return 'done'" }
  - id: last
    kv: { get: applied }
outputs:
  applied: \${{ steps.tally.outputs.value }}
  checked: \${{ steps.check.outputs.result }}
`;
}

function validateOnce(cwd: string, path: string, files: number): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [CLI, "validate", path, "--json"], { cwd, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  const took = performance.now() - t;
  let report: { ok?: boolean; data?: { files?: unknown[] } } | undefined;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    report = undefined;
  }
  if (r.status !== 0 || report?.ok !== true || report.data?.files?.length !== files) {
    throw new Error(`sluice validate ${path} did not find ${files} valid files (exit ${r.status}): ${r.stderr || r.stdout.slice(0, 2000)}`);
  }
  return took;
}

export async function validate(ctx: Context): Promise<Section> {
  ctx.log("validate 1,000 files");
  const root = join(ctx.ws.root, "validate");
  const flows = join(root, ".github", "flows");
  const one = join(root, "one");
  mkdirSync(flows, { recursive: true });
  mkdirSync(one, { recursive: true });
  for (let i = 1; i <= 1000; i++) writeFileSync(join(flows, `flow-${String(i).padStart(4, "0")}.yml`), flowText(i));
  writeFileSync(join(one, "flow-0001.yml"), flowText(1));
  const reps = ctx.quick ? 1 : 3;
  const thousand = median(Array.from({ length: reps }, () => validateOnce(root, flows, 1000)));
  const single = median(Array.from({ length: reps }, () => validateOnce(root, one, 1)));
  const perFile = (thousand - single) / 999;
  const body = [
    "`sluice validate <folder> --json` as a process (the built CLI): 1,000 flow files of 14 steps each (http, kv, function, sleep, an approval with evidence and escalation, a callback, notify; expressions, conditions, a schedule, concurrency, outputs), all valid; the median of " +
      `${reps} run${reps > 1 ? "s" : ""}.`,
    "",
    table([
      ["measure", "time"],
      ["`node -e 0` (the yardstick)", ms(ctx.yard.nodeStart)],
      ["`sluice validate` of 1 file", `${ms(single)} (${times(single / ctx.yard.nodeStart)} \`node -e 0\`)`],
      ["`sluice validate` of 1,000 files", `${ms(thousand)} (${times(thousand / ctx.yard.nodeStart)} \`node -e 0\`)`],
      ["per file beyond the first", ms(perFile)],
    ]),
  ].join("\n");
  return { title: "`validate` of 1,000 files", body };
}
