/**
 * The first hour, as a newcomer lives it: Sluice installed from a clone with
 * `npm install -g <clone>` (into a temporary prefix), then, in a fresh repository of their own,
 * `init`, `validate`, `run`, `gates explain` and `approve`: in a real terminal (a pseudo-terminal
 * from util-linux's `script`, so the output is coloured) and through `--json`.
 *
 * Why this install: `npm install -g <folder>` links the clone (npm does that for a folder), as
 * the README tells users to do, offline and in seconds. Packing a tarball and installing it would
 * rebuild better-sqlite3 from source (its prebuilt binary cannot be downloaded here), minutes per
 * run; what a tarball would hold is checked instead with `npm pack --dry-run`.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const ROOT = resolve(import.meta.dirname, "../..");
const ANSI = /\x1b\[[0-9;]*m/g;
const plain = (s: string) => s.replace(ANSI, "").replace(/\r/g, "");

let prefix: string;
let repo: TestRepo;
let env: NodeJS.ProcessEnv;

beforeAll(() => {
  prefix = mkdtempSync(join(tmpdir(), "sluice-prefix-"));
  execFileSync("npm", ["install", "-g", "--prefix", prefix, ROOT, "--offline", "--no-audit", "--no-fund", "--loglevel=error"], { encoding: "utf8", stdio: "pipe" });
  repo = makeRepo();
  // Only the installed `sluice` is on the PATH; nothing points at this checkout.
  env = { PATH: `${join(prefix, "bin")}:/usr/local/bin:/usr/bin:/bin`, HOME: repo.dir, SLUICE_USER: "alice", LOG_LEVEL: "warn", TERM: "xterm-256color", LANG: "C.UTF-8" };
}, 120_000);

afterAll(() => {
  repo?.remove();
  if (prefix) rmSync(prefix, { recursive: true, force: true });
});

/** `sluice …` in a pseudo-terminal: what a person sees, and the exit code. */
function terminal(args: string, extra: Record<string, string> = {}): { code: number; out: string } {
  const r = spawnSync("script", ["-qfec", `sluice ${args}`, "/dev/null"], { cwd: repo.dir, env: { ...env, ...extra }, encoding: "utf8" });
  return { code: r.status ?? -1, out: r.stdout };
}

function json(args: string[]): { code: number; doc: any } {
  const r = spawnSync("sluice", [...args, "--json"], { cwd: repo.dir, env, encoding: "utf8" });
  return { code: r.status ?? -1, doc: JSON.parse(r.stdout) };
}

describe("sluice installed from a clone, in a repository of one's own", () => {
  it("is on the PATH, linked to the clone, and a tarball would carry what it needs", () => {
    const bin = join(prefix, "bin", "sluice");
    expect(existsSync(bin)).toBe(true);
    expect(realpathSync(bin)).toBe(join(realpathSync(ROOT), "dist/src/cli.js"));
    expect(readFileSync(bin, "utf8").startsWith("#!/usr/bin/env node")).toBe(true);
    const packed = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" })) as { files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    for (const f of ["dist/src/cli.js", "dist/src/core/flow/generated/validators.js", "schemas/flow.schema.json", "schemas/config.schema.json"]) expect(files).toContain(f);
    expect(files.filter((f) => f.startsWith("test/") || f.startsWith("src/"))).toEqual([]);
  });

  it("init, validate, run, gates explain, approve: in a terminal, with colours", () => {
    const init = terminal("init");
    expect(init.code).toBe(0);
    expect(plain(init.out)).toMatch(/created\s+\.github\/flows\/hello\.yml/);
    expect(plain(init.out)).toMatch(/created\s+\.github\/sluice\.yml/);
    expect(readFileSync(join(repo.dir, ".gitignore"), "utf8")).toMatch(/^\.sluice\/$/m);
    for (const f of [".github/flows/hello.yml", ".github/sluice.yml"]) {
      expect(readFileSync(join(repo.dir, f), "utf8").split("\n")[0]).toMatch(/^# yaml-language-server: \$schema=\S+\.schema\.json$/);
    }
    repo.git("add", "-A");
    repo.git("commit", "-q", "-m", "Add Sluice");

    const validate = terminal("validate");
    expect(validate.code).toBe(0);
    expect(plain(validate.out)).toMatch(/flows checked against \.github\/sluice\.yml/);
    expect(plain(validate.out)).toMatch(/2 files checked: 0 errors/);

    const run = terminal("run hello --input who=you");
    expect(run.code).toBe(3);
    expect(run.out).toMatch(/\x1b\[33mwaiting\x1b\[39m/); // the status, in yellow
    expect(run.out).toMatch(/\x1b\[32m✓\x1b\[39m greet/); // a step done, in green
    const text = plain(run.out);
    expect(text).toMatch(/gate at review: Remember this greeting\?/);
    expect(text).toMatch(/summary: Hello, you!/);
    const id = /^run (\S+)\s+hello\s+waiting/m.exec(text)?.[1];
    expect(id).toBeTruthy();

    const explain = terminal(`gates explain ${id}`);
    expect(explain.code).toBe(0);
    expect(plain(explain.out)).toMatch(/evidence:\s+Hello, you!/);
    expect(plain(explain.out)).toMatch(/alice triggered the run and cannot approve it/);

    const self = terminal(`approve ${id}`);
    expect(self.code).toBe(1);
    expect(self.out).toMatch(/\x1b\[31merror APPROVAL_NOT_ELIGIBLE/); // refused, in red

    const approve = terminal(`approve ${id} --as bob`);
    expect(approve.code).toBe(0);
    expect(approve.out).toMatch(/\x1b\[32msucceeded\x1b\[39m/);
    expect(plain(approve.out)).toMatch(/outputs: \{"message":"Hello, you!"\}/);

    // NO_COLOR wins over a terminal.
    expect(terminal(`runs show ${id}`, { NO_COLOR: "1" }).out).not.toMatch(ANSI);
  });

  it("the same through --json", () => {
    const run = json(["run", "hello", "--input", "who=json"]);
    expect(run.code).toBe(3);
    expect(run.doc).toMatchObject({ apiVersion: "sluice/v1", kind: "Run", ok: true, data: { status: "waiting", gate: { step: "review" } } });
    const id = run.doc.data.id;
    const explain = json(["gates", "explain", id]);
    expect(explain.doc).toMatchObject({ kind: "GateExplanation", data: { gates: [{ step: "review", summary: "Hello, json!", evidence: ["Hello, json!"] }] } });
    const approve = json(["approve", id, "--as", "bob", "--digest", explain.doc.data.gates[0].digest]);
    expect(approve.code).toBe(0);
    expect(approve.doc.data).toMatchObject({ status: "succeeded", outputs: { message: "Hello, json!" } });
  });
});
