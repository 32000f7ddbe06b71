/**
 * No installed package refuses the oldest Node.js package.json's engines accepts (issue 10:
 * content-type 3, through @octokit/request, wanted Node 22; @noble/hashes 2 and vite 7 want
 * 20.19: package.json pins versions that run on 20.18.1).
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
// npm's own range logic (semver, installed with npm's dependency tree).
const semver = createRequire(import.meta.url)("semver") as { satisfies(version: string, range: string): boolean; minVersion(range: string): { version: string } };
/** The oldest Node.js Sluice supports (package.json's engines): CI and users may run it. */
const OLDEST = semver.minVersion((JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { engines: { node: string } }).engines.node).version;

describe("dependencies on Node 20", () => {
  it(`every installed package accepts Node ${OLDEST}`, () => {
    const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string; engines?: { node?: string } | string[] }> };
    const refusing = Object.entries(lock.packages)
      .filter(([path, p]) => path && existsSync(join(ROOT, path)) && p.engines && !Array.isArray(p.engines) && p.engines.node)
      .filter(([, p]) => !semver.satisfies(OLDEST, (p.engines as { node: string }).node))
      .map(([path, p]) => `${path}@${p.version} wants node ${(p.engines as { node: string }).node}`);
    expect(refusing).toEqual([]);
  });
});
