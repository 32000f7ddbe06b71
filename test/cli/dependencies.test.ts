/**
 * `npm install` on Node 20 warns about no installed package that wants a newer major (issue 10:
 * content-type 3, through @octokit/request, wanted Node 22; package.json's overrides pin 2.x).
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
// npm's own range logic (semver, installed with npm's dependency tree).
const semver = createRequire(import.meta.url)("semver") as { intersects(a: string, b: string): boolean };

describe("dependencies on Node 20", () => {
  it("every installed package accepts Node 20", () => {
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> };
    const refusing = Object.entries(lock.packages)
      .filter(([path, p]) => path && existsSync(join(ROOT, path)) && p.engines && !Array.isArray(p.engines) && p.engines.node)
      .filter(([, p]) => !semver.intersects((p.engines as { node: string }).node, "^20"))
      .map(([path, p]) => `${path}@${p.version} wants node ${(p.engines as { node: string }).node}`);
    expect(refusing).toEqual([]);
  });
});
