/**
 * The places a newcomer got stuck or misled (issue 10), each as they meet it: help, exit codes,
 * validation against the repository's config, evidence and requests in the terminal, colours and
 * local times, --follow, hints, the state folder, the repository's name, init.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { schemasHash } from "../../src/core/flow/generated/validators.js";
import { COMMANDS } from "../../src/adapters/cli/commands.js";
import { CLI, sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const ROOT = resolve(import.meta.dirname, "../..");
const ANSI = /\x1b\[[0-9;]*m/;
const SECRET = "hunter2-very-secret";

const DIFF = ["diff --git a/app.txt b/app.txt", "--- a/app.txt", "+++ b/app.txt", "@@ -1,2 +1,2 @@", "-old line", "+new line", ...Array.from({ length: 40 }, (_, i) => ` context ${i}`)].join("\n");

let repo: TestRepo;
let env: Record<string, string>;

beforeAll(() => {
  repo = makeRepo({
    ".github/sluice.yml": `connections:\n  api: { type: http, base_url: "https://api.example.com", secret: API_TOKEN }\n`,
    ".github/flows/review.yml": `on: { manual: { inputs: { diff: { type: string, required: true } } } }
steps:
  - id: look
    wait:
      approval:
        title: Apply this change?
        summary: One file changes
        evidence: ["\${{ inputs.diff }}"]
`,
    ".github/flows/post.yml": `on: { manual: { inputs: { token: { type: string, default: "" } } } }
steps:
  - id: send
    http: { connection: api, method: POST, url: /items, body: { name: widget, note: "\${{ inputs.token }}" } }
`,
    ".github/flows/nap.yml": `on: { manual: {} }
steps:
  - id: short
    sleep: 10ms
  - id: long
    sleep: 2h
`,
  });
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_SECRET_API_TOKEN: SECRET };
});
afterAll(() => repo.remove());

const run = (args: string[], extra: Record<string, string> = {}) => sluice(repo.dir, args, { ...env, ...extra });

describe("help that helps", () => {
  it("every command's --help describes its options, with an example", () => {
    for (const [name, spec] of Object.entries(COMMANDS)) {
      const r = run([name, "--help"]);
      expect(r.code, name).toBe(0);
      expect(r.stdout).toContain(`usage: ${spec.usage[0]}`);
      for (const option of Object.keys(spec.options)) expect(r.stdout, `${name} --${option}`).toMatch(new RegExp(`--${option}\\b.*\\S`));
      expect(r.stdout).toMatch(/^examples?:\n {2}\S/m);
    }
    expect(run(["help", "run"]).stdout).toBe(run(["run", "--help"]).stdout);
  });

  it("an unknown flag gets one line of Sluice's own, and exit 2", () => {
    const r = run(["runs", "list", "--colour"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("error USAGE: sluice runs: unknown option '--colour' (see sluice runs --help)\n");
    const missing = run(["run", "review", "--ref", "--json"]);
    expect(missing.code).toBe(2);
    const json = run(["validate", "--frob", "--json"]).json;
    expect(json).toMatchObject({ kind: "Error", ok: false, error: { code: "USAGE", message: "sluice validate: unknown option '--frob' (see sluice validate --help)" } });
  });
});

describe("exit codes as SPEC §6 says", () => {
  it("kv get of a missing key exits 4; a bad --status and bad inputs are usage errors (2)", () => {
    const missing = run(["kv", "get", "nothing-here", "--json"]);
    expect(missing.code).toBe(4);
    expect(missing.json.error).toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("nothing-here") });
    expect(run(["kv", "set", "here", "1"]).code).toBe(0);
    expect(run(["kv", "get", "here", "--json"]).json.data).toMatchObject({ key: "here", value: 1 });
    const status = run(["runs", "list", "--status", "waiting,sleeping", "--json"]);
    expect(status.code).toBe(2);
    expect(status.json.error.message).toMatch(/'sleeping'/);
    expect(run(["run", "review"]).code).toBe(2);
    expect(run(["run", "review", "--input", "oops"]).code).toBe(2);
  });
});

describe("validation the same everywhere", () => {
  it("a single flow file is checked against the repository's .github/sluice.yml, and the report says so", () => {
    const r = run(["validate", ".github/flows/post.yml", "--json"]);
    expect(r.code).toBe(0);
    expect(r.json.data.config).toEqual({ file: ".github/sluice.yml", text: ".github/sluice.yml (the repository's config)" });
    expect(run(["validate", ".github/flows/post.yml"]).stdout).toMatch(/flows checked against \.github\/sluice\.yml \(the repository's config\)/);
    // Without the repository's config, the connection would be unknown: the config really was applied.
    repo.write({ "elsewhere/post.yml": readFileSync(join(repo.dir, ".github/flows/post.yml"), "utf8") });
    const outside = sluice(join(repo.dir, "elsewhere"), ["validate", "post.yml", "--json"], env);
    expect(outside.json.data.config.file).toBe("../.github/sluice.yml");
    writeFileSync(join(repo.dir, ".github/sluice.yml"), "connections: {}\n");
    const without = run(["validate", ".github/flows/post.yml", "--json"]);
    expect(without.code).toBe(1);
    expect(without.json.data.files[0].diagnostics[0].code).toBe("CONNECTION_UNKNOWN");
    // The message names the config that was applied, wherever it is.
    writeFileSync(join(repo.dir, "elsewhere/sluice.yml"), "connections: {}\n");
    const named = sluice(join(repo.dir, "elsewhere"), ["validate", "sluice.yml", "post.yml", "--json"], env);
    expect(named.json.data.files.find((f: { kind: string }) => f.kind === "flow").diagnostics[0].message).toMatch(/is not declared in sluice\.yml$/);
    repo.git("checkout", "--", ".github/sluice.yml");
  });

  it("the schemas are compiled at build time, from the schemas as they are now", () => {
    const text = (f: string) => readFileSync(join(ROOT, "schemas", f), "utf8");
    const hash = createHash("sha256").update(text("flow.schema.json")).update("\0").update(text("config.schema.json")).digest("hex");
    expect(schemasHash, "src/core/flow/generated/ is stale: npm run build").toBe(hash);
    expect(readFileSync(join(ROOT, "dist/src/core/flow/generated/validators.js"), "utf8")).toContain(`schemasHash = "${hash}"`);
  });
});

describe("the evidence in the terminal", () => {
  it("run and gates explain print the gate's summary and evidence: a long diff folded and coloured", () => {
    const r = run(["run", "review", "--input", `diff=${DIFF}`], { FORCE_COLOR: "1" });
    expect(r.code).toBe(3);
    expect(r.stdout).toContain("summary:\x1b[22m One file changes");
    expect(r.stdout).toContain("\x1b[31m-old line\x1b[39m");
    expect(r.stdout).toContain("\x1b[32m+new line\x1b[39m");
    expect(r.stdout).toMatch(/… 22 more lines \(sluice gates explain \S+ --json shows all of it\)/);
    expect(r.stdout).not.toContain("context 39");
    const id = /^run \x1b\[1m(\S+)\x1b\[22m/m.exec(r.stdout)![1]!;
    const plain = run(["gates", "explain", id], { NO_COLOR: "1", FORCE_COLOR: "1" });
    expect(plain.stdout).not.toMatch(ANSI);
    expect(plain.stdout).toContain("    -old line");
    expect(run(["gates", "explain", id, "--json"]).json.data.gates[0].evidence[0]).toBe(DIFF);
  });

  it("an implicit gate shows the request it guards: method, URL, body, secrets redacted", () => {
    const r = run(["run", "post", "--input", `token=${SECRET}`]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/request it guards:\n\s+POST \/items \(connection api\)\n/);
    expect(r.stdout).toContain('"name": "widget"');
    expect(r.stdout).toContain('"note": "***"');
    expect(r.stdout).not.toContain(SECRET);
    const id = /^run (\S+)/m.exec(r.stdout)![1]!;
    expect(run(["gates", "explain", id]).stdout).toMatch(/POST \/items \(connection api\)/);
  });
});

describe("output", () => {
  it("times are local times, never epoch milliseconds", () => {
    const r = run(["run", "nap", "--json"]);
    const id = r.json.data.id;
    const tz = { TZ: "Asia/Tokyo" };
    const events = run(["runs", "events", id], tz).stdout;
    expect(events).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (JST|GMT\+9)/);
    expect(events).not.toMatch(/\b1\d{12}\b/);
    expect(run(["runs", "list"], tz).stdout).toMatch(/(JST|GMT\+9)/);
  });

  it("a long sleep ends with the hint to run sluice worker", () => {
    const r = run(["run", "nap"]);
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/hint: run \S+ sleeps at long until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d .*: start sluice worker/);
  });

  it("--follow prints the run id first", () => {
    const r = run(["run", "review", "--input", "diff=x", "--follow"]);
    expect(r.code).toBe(3);
    const first = r.stdout.split("\n")[0]!;
    expect(first).toMatch(/^run (\S+) {2}review {2}live main @ [0-9a-f]{7}$/);
    const id = first.split(/\s+/)[1]!;
    expect(r.stdout).toContain(`run ${id}  review  waiting`);
    expect(r.stderr).toMatch(/⏸ look waiting for approval: Apply this change\?/);
  });

  it("colours only on a terminal or with FORCE_COLOR, never with NO_COLOR", () => {
    expect(run(["runs", "list"]).stdout).not.toMatch(ANSI);
    expect(run(["runs", "list"], { FORCE_COLOR: "1" }).stdout).toMatch(ANSI);
    expect(run(["runs", "list"], { FORCE_COLOR: "1", NO_COLOR: "1" }).stdout).not.toMatch(ANSI);
    expect(run(["runs", "list", "--json"], { FORCE_COLOR: "1" }).stdout).not.toMatch(ANSI);
  });

  it("uncommitted config changes: drafts never use a branch's config, and the note says so", () => {
    writeFileSync(join(repo.dir, ".github/sluice.yml"), "connections: {}\n");
    const r = run(["run", "review", "--input", "diff=x", "--json"]);
    repo.git("checkout", "--", ".github/sluice.yml");
    expect(r.json.data.notes).toEqual([
      "uncommitted changes to .github/sluice.yml do not apply: every run, a draft too, uses the config committed on the default branch; commit it there to change connections or policy",
    ]);
  });
});

describe("local state and names", () => {
  it("SLUICE_HOME that cannot be made fails at once with STORE_ERROR, naming it", () => {
    // Before, a recursive mkdir under /proc never returned: the timeout makes a hang fail.
    const list = (home: string) => {
      const r = spawnSync(process.execPath, [CLI, "runs", "list", "--json"], { cwd: repo.dir, env: { ...process.env, SLUICE_HOME: home }, encoding: "utf8", timeout: 15_000 });
      return { code: r.status, json: JSON.parse(r.stdout || "null") };
    };
    const r = list("/proc/sluice-state/here");
    expect(r.code).toBe(5);
    expect(r.json.error).toMatchObject({ code: "STORE_ERROR", message: expect.stringContaining("/proc/sluice-state") });
    expect(list(join(repo.dir, "README.md")).json.error.message).toMatch(/is not a folder/);
  });

  it("a repository without a GitHub remote is _local/<folder>: owner/name shaped, and no GitHub account's", () => {
    const r = run(["run", "nap", "--json"]);
    expect(r.json.data.repo).toMatch(/^_local\/sluice-repo-[A-Za-z0-9_-]+$/);
    repo.git("remote", "add", "origin", "git@github.com:acme/shop.git");
    expect(run(["run", "nap", "--json"]).json.data.repo).toBe("acme/shop");
    repo.git("remote", "remove", "origin");
  });
});
