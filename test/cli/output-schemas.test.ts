/**
 * Every `--json` document the CLI prints validates against the schema of its kind in
 * schemas/cli/ (kind Run → run.schema.json), and every NDJSON line of --follow against RunEvent.
 */
import { readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sluice } from "../support/cli.js";
import { makeRepo, type TestRepo } from "../support/git-repo.js";

const DIR = resolve(import.meta.dirname, "../../schemas/cli");
const ajv = new Ajv2020({ strict: true, allErrors: true });
for (const f of readdirSync(DIR)) ajv.addSchema(JSON.parse(readFileSync(join(DIR, f), "utf8")));
const schemaFor = (kind: string) => `https://sluice.dev/schemas/cli/${kind.replace(/([a-z])([A-Z])/g, "$1-$2").toLowerCase()}.schema.json`;

function check(doc: { kind: string }): void {
  const validate = ajv.getSchema(schemaFor(doc.kind));
  expect(validate, `a schema for kind ${doc.kind}`).toBeDefined();
  const ok = validate!(doc);
  expect(validate!.errors ?? [], JSON.stringify(doc).slice(0, 400)).toEqual([]);
  expect(ok).toBe(true);
}

const FLOW = `
on:
  manual: { inputs: { n: { type: number, default: 1 } } }
  schedule: [{ cron: "0 3 * * 1-5", timezone: Europe/Berlin }]
steps:
  - id: count
    kv: { incr: { key: c, by: "\${{ inputs.n }}" } }
  - id: review
    wait: { approval: { approvers: { users: [bob] } } }
`;

let repo: TestRepo;
let env: Record<string, string>;
beforeAll(() => {
  repo = makeRepo({ ".github/flows/demo.yml": FLOW, ".github/flows/broken.yml": "on: {}\nsteps: []\n" });
  env = { SLUICE_HOME: join(repo.dir, ".state"), SLUICE_MASTER_KEY: "test-master-key" };
});
afterAll(() => repo.remove());

describe("CLI output matches schemas/cli", () => {
  it("every kind a session produces", () => {
    const run = (args: string[], input?: string) => sluice(repo.dir, [...args, "--json"], env, input).json;
    const started = run(["run", "demo"]);
    const id = started.data.id;
    const docs = [
      started,
      run(["validate"]),
      run(["validate", ".github/flows/demo.yml"]),
      run(["flows", "list"]),
      run(["runs", "list"]),
      run(["runs", "show", id]),
      run(["runs", "events", id]),
      run(["gates", "list"]),
      run(["gates", "explain", id]),
      run(["kv", "set", "k", '{"a":1}', "--ttl", "1h"]),
      run(["kv", "get", "k"]),
      run(["kv", "list"]),
      run(["secrets", "set", "TOKEN"], "s3cret-value\n"),
      run(["secrets", "list"]),
      run(["schema", "flow"]),
      run(["worker", "--once"]),
      run(["approve", id, "--as", "bob"]),
      run(["runs", "show", "missing"]),
      run(["run"]),
      run(["runs", "cancel", run(["run", "demo"]).data.id]),
      run(["init"]),
    ];
    const kinds = new Set<string>();
    for (const doc of docs) {
      expect(doc, "a JSON document").toBeDefined();
      kinds.add(doc.kind);
      check(doc);
    }
    expect([...kinds].sort()).toEqual(
      ["Error", "EventList", "FlowList", "GateExplanation", "GateList", "Init", "KvEntry", "KvList", "Run", "RunList", "Schema", "Secret", "SecretList", "ValidationReport", "Worker"].sort(),
    );
    expect(JSON.stringify(docs)).not.toContain("s3cret-value");
  });

  it("--follow --json writes one RunEvent per line, then the Run", () => {
    const r = sluice(repo.dir, ["run", "demo", "--follow", "--json"], env);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { kind: string });
    expect(lines.length).toBeGreaterThan(3);
    const validate = ajv.getSchema(schemaFor("RunEvent"))!;
    for (const line of lines.slice(0, -1)) expect(validate(line), JSON.stringify(validate.errors)).toBe(true);
    check(lines.at(-1)!);
    expect(lines.at(-1)!.kind).toBe("Run");
  });
});
