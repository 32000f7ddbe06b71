/** `sluice validate` as a user runs it: exit codes, `file:line:col` output, usage errors. */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { sluice } from "../support/cli.js";

const ROOT = resolve(import.meta.dirname, "../..");
const INVALID = join(ROOT, "test/fixtures/flows/invalid");

describe("sluice validate", () => {
  it("the examples are valid: exit 0", () => {
    const r = sluice(ROOT, ["validate", "examples/"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/files checked: 0 errors/);
  });

  it("this repository's own flows are valid", () => {
    expect(sluice(ROOT, ["validate"]).code).toBe(0);
  });

  const flows = readdirSync(INVALID).filter((f) => f.endsWith(".yml") && !f.endsWith(".sluice.yml"));
  it.each(flows.slice(0, 12))("%s exits 1 and names its lines", (file) => {
    const expected = JSON.parse(readFileSync(join(INVALID, file.replace(/\.yml$/, ".expected.json")), "utf8")) as { code: string; line: number }[];
    const r = sluice(ROOT, ["validate", "--", join("test/fixtures/flows/sluice.yml"), join("test/fixtures/flows/invalid", file)]);
    expect(r.code).toBe(1);
    for (const e of expected) expect(r.stdout).toContain(`test/fixtures/flows/invalid/${file}:${e.line}:`);
    for (const e of expected) expect(r.stdout).toMatch(new RegExp(`:${e.line}:\\d+: error ${e.code} `));
    // The offending line is shown under the diagnostic.
    const firstLine = readFileSync(join(INVALID, file), "utf8").split("\n")[expected[0]!.line - 1]!;
    expect(r.stdout).toContain(`${expected[0]!.line} | ${firstLine}`);
  });

  it("two flows with one name are FLOW_NAME_DUPLICATE", () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-dup-"));
    const flow = "name: same\non: { manual: {} }\nsteps:\n  - id: a\n    sleep: 1s\n";
    writeFileSync(join(dir, "a.yml"), flow);
    writeFileSync(join(dir, "b.yml"), flow);
    const r = sluice(dir, ["validate", ".", "--json"]);
    expect(r.code).toBe(1);
    const diags = r.json.data.files.flatMap((f: { diagnostics: { code: string }[] }) => f.diagnostics);
    expect(diags.map((d: { code: string }) => d.code)).toEqual(["FLOW_NAME_DUPLICATE"]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("a path that does not exist and an unknown flag are usage errors: exit 2", () => {
    const missing = sluice(ROOT, ["validate", "no/such/file.yml", "--json"]);
    expect(missing.code).toBe(2);
    expect(missing.json.error).toMatchObject({ code: "USAGE", message: expect.stringContaining("no/such/file.yml") });
    expect(sluice(ROOT, ["validate", "--strictly"]).code).toBe(2);
  });

  it("sluice schema prints the schemas; a wrong name is a usage error", () => {
    const flow = sluice(ROOT, ["schema", "flow"]);
    expect(flow.code).toBe(0);
    expect(JSON.parse(flow.stdout)).toEqual(JSON.parse(readFileSync(join(ROOT, "schemas/flow.schema.json"), "utf8")));
    expect(JSON.parse(sluice(ROOT, ["schema", "config"]).stdout).$id).toMatch(/config\.schema\.json$/);
    expect(sluice(ROOT, ["schema", "nope"]).code).toBe(2);
  });
});
