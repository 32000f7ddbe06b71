/**
 * Keeps the core replayable: nothing under src/core/ may import I/O (node:*, databases, ssh,
 * GitHub clients, git) or reach outside src/core/ (but for the JSON schemas it validates with).
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const CORE = resolve(import.meta.dirname, "../../src/core");
const FORBIDDEN = /^(node:|fs$|path$|os$|child_process$|http$|https$|net$|crypto$|probot|pg$|better-sqlite3|ssh2|simple-git|@octokit\/|prom-client|quickjs-emscripten)/;

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

function imports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']/g)) out.push(m[1] as string);
  for (const m of text.matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) out.push(m[1] as string);
  return out;
}

describe("src/core is pure", () => {
  const all = files(CORE);
  it("has files to check", () => expect(all.length).toBeGreaterThan(10));
  for (const file of all) {
    it(relative(CORE, file), () => {
      const bad = imports(readFileSync(file, "utf8")).filter((spec) => {
        if (FORBIDDEN.test(spec)) return true;
        if (!spec.startsWith(".")) return false;
        const target = resolve(dirname(file), spec);
        return !target.startsWith(CORE) && !/\/schemas\/[a-z-]+\.schema\.json$/.test(target);
      });
      expect(bad).toEqual([]);
    });
  }
  it("the checker catches a forbidden import", () => {
    expect(imports('import { readFileSync } from "node:fs";\nimport x from "./y.js";').filter((s) => FORBIDDEN.test(s))).toEqual(["node:fs"]);
  });
});
