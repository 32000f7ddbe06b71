/**
 * Benchmarks that live in scripts of their own (GitHub API calls per run, webhook intake under
 * load, a burst against GitHub's limits, the CLI's start-up): each prints its results on stdout,
 * and this section runs each one that exists and puts what it printed into RESULTS.md, so every
 * figure comes from the same run. A slow one (minutes, bound by GitHub's hourly limits) runs only
 * with `--slow`.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Context, Section } from "./lib/context.js";
import { ms } from "./lib/measure.js";

interface Script {
  file: string;
  title: string;
  /** Arguments of a full run and of a quick one. */
  args: { full: string[]; quick: string[] };
  slow?: boolean;
}

export const SCRIPTS: readonly Script[] = [
  { file: "check-run-calls.ts", title: "GitHub API calls per run", args: { full: [], quick: ["--quick"] } },
  { file: "intake.ts", title: "Webhook intake under load from another process", args: { full: [], quick: ["--quick"] } },
  { file: "cli-start.ts", title: "CLI start-up", args: { full: [], quick: ["5"] } },
  { file: "github-burst.ts", title: "A burst against GitHub's limits", args: { full: [], quick: ["--quick"] }, slow: true },
];

const TSX = resolve(import.meta.dirname, "../node_modules/.bin/tsx");

export async function scripts(ctx: Context & { slow: boolean }): Promise<Section[]> {
  const sections: Section[] = [];
  for (const s of SCRIPTS) {
    const path = join(import.meta.dirname, s.file);
    if (!existsSync(path)) continue;
    if (s.slow && !ctx.slow) {
      sections.push({ title: s.title, body: `\`bench/${s.file}\` takes minutes (GitHub's limits pace it): not run; \`npm run bench -- --slow\` runs it.` });
      continue;
    }
    ctx.log(`script: ${s.file}`);
    const t = performance.now();
    const r = spawnSync(TSX, [path, ...(ctx.quick ? s.args.quick : s.args.full)], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 90 * 60_000 });
    const took = performance.now() - t;
    const out = r.stdout.trim();
    const printed = /^(\||#|\*\*)/m.test(out) ? out : `\`\`\`\n${out}\n\`\`\``;
    const failed = r.status !== 0 ? `\n\n**The script failed** (exit ${r.status ?? r.signal}):\n\n\`\`\`\n${(r.stderr || "").slice(-3000)}\n\`\`\`` : "";
    sections.push({ title: s.title, body: `\`bench/${s.file}\` (${ms(took)}), as it printed:\n\n${printed}${failed}` });
  }
  return sections;
}
