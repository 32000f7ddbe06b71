/**
 * The validation fixtures of test/fixtures/flows: every valid file validates without an error,
 * every invalid file produces exactly the error diagnostics (code and line) its sibling
 * `<name>.expected.json` lists. Flows are validated with test/fixtures/flows/sluice.yml;
 * `*.sluice.yml` files are validated as configurations. Each invalid fixture also marks its
 * expected errors in place, `# expect: CODE[, CODE]` at the end of the line, and the two must
 * agree. The examples are checked the same way, with examples/sluice.yml.
 */
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { validateConfig, validateFlow } from "../src/core/flow/validate.js";
import type { Config, Diagnostic } from "../src/core/flow/types.js";

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const fixtures = join(root, "test", "fixtures", "flows");
const examples = join(root, "examples");

/** Every diagnostic code the validator produces, but FLOW_NAME_DUPLICATE (a folder-level check). */
const CODES = [
  "YAML_SYNTAX",
  "YAML_DUPLICATE_KEY",
  "YAML_ALIAS_LIMIT",
  "YAML_NOT_MAPPING",
  "YAML_MULTIPLE_DOCUMENTS",
  "FLOW_SCHEMA",
  "CONFIG_SCHEMA",
  "STEP_ID_DUPLICATE",
  "EXPR_SYNTAX",
  "EXPR_UNKNOWN_REF",
  "DURATION_INVALID",
  "CRON_INVALID",
  "TIMEZONE_INVALID",
  "CONNECTION_UNKNOWN",
  "CONNECTION_TYPE",
  "POLICY_DENIED",
] as const;

interface Expected {
  code: string;
  line: number;
}

const isYaml = (f: string) => /\.ya?ml$/.test(f);
const isConfigFile = (f: string) => /\.sluice\.ya?ml$/.test(f) || f === "sluice.yml";

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).filter(isYaml).sort();
}

function loadConfig(file: string): Config {
  const result = validateConfig(readFileSync(file, "utf8"), { file: relative(root, file) });
  const errors = result.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || !result.config) {
    throw new Error(`${file} does not validate: ${JSON.stringify(errors, null, 2)}`);
  }
  return result.config;
}

function diagnosticsOf(file: string, config: Config): Diagnostic[] {
  const text = readFileSync(file, "utf8");
  const name = relative(root, file);
  const result = isConfigFile(file) ? validateConfig(text, { file: name }) : validateFlow(text, { file: name, config });
  return result.diagnostics;
}

/** A canonical, sorted form of a multiset of {code, line}, so two multisets compare as arrays. */
function multiset(items: readonly Expected[]): string[] {
  return items.map((e) => `${String(e.line).padStart(4, "0")} ${e.code}`).sort();
}

const errorsOf = (diagnostics: readonly Diagnostic[]) => diagnostics.filter((d) => d.severity === "error");
const show = (diagnostics: readonly Diagnostic[]) =>
  diagnostics.map((d) => `${d.line}:${d.column} ${d.code} ${d.pointer} ${d.message}`).join("\n");

function readExpected(file: string): Expected[] {
  const expectedFile = file.replace(/\.ya?ml$/, ".expected.json");
  const parsed: unknown = JSON.parse(readFileSync(expectedFile, "utf8"));
  if (!Array.isArray(parsed)) throw new Error(`${expectedFile}: expected an array`);
  return parsed.map((e: unknown, i) => {
    const entry = e as Partial<Expected>;
    if (typeof entry.code !== "string" || typeof entry.line !== "number" || !Number.isInteger(entry.line) || entry.line < 1) {
      throw new Error(`${expectedFile}[${i}]: each entry is {"code": string, "line": 1-based integer}`);
    }
    return { code: entry.code, line: entry.line };
  });
}

describe("fixture configuration", () => {
  it("test/fixtures/flows/sluice.yml is a valid configuration with deny rules", () => {
    const config = loadConfig(join(fixtures, "sluice.yml"));
    expect(config.policy.deny.ssh?.length).toBeGreaterThan(0);
    expect(config.policy.deny.http?.length).toBeGreaterThan(0);
  });
});

describe("valid fixtures", () => {
  const config = loadConfig(join(fixtures, "sluice.yml"));
  const files = yamlFiles(join(fixtures, "valid"));

  it("are there", () => {
    expect(files.length).toBeGreaterThanOrEqual(20);
  });

  for (const name of files) {
    it(`valid/${name} has no error`, () => {
      const diagnostics = diagnosticsOf(join(fixtures, "valid", name), config);
      expect(show(errorsOf(diagnostics))).toBe("");
    });
  }

  it("valid flows come back normalised, with the flow name defaulting to the file stem", () => {
    const text = readFileSync(join(fixtures, "valid", "http-get-minimal.yml"), "utf8");
    const result = validateFlow(text, { file: "test/fixtures/flows/valid/http-get-minimal.yml", config });
    expect(result.flow?.name).toBe("http-get-minimal");
    expect(result.flow?.steps.map((s) => [s.id, s.kind])).toEqual([["ping", "http"]]);
  });
});

describe("invalid fixtures", () => {
  const config = loadConfig(join(fixtures, "sluice.yml"));
  const dir = join(fixtures, "invalid");
  const files = yamlFiles(dir);
  const expectedFiles = readdirSync(dir).filter((f) => f.endsWith(".expected.json"));

  it("each has an expected file, and each expected file a fixture", () => {
    const stems = files.map((f) => f.replace(/\.ya?ml$/, "")).sort();
    expect(expectedFiles.map((f) => f.replace(/\.expected\.json$/, "")).sort()).toEqual(stems);
  });

  it("together with the valid ones, they number at least 40", () => {
    expect(files.length + yamlFiles(join(fixtures, "valid")).length).toBeGreaterThanOrEqual(40);
  });

  it("cover every diagnostic code", () => {
    const seen = new Set(files.flatMap((f) => readExpected(join(dir, f)).map((e) => e.code)));
    expect(CODES.filter((c) => !seen.has(c))).toEqual([]);
  });

  it("each marks its expected errors in place with `# expect: CODE`, and the expected file agrees", () => {
    for (const name of files) {
      const marked = readFileSync(join(dir, name), "utf8")
        .split("\n")
        .flatMap((text, i) => {
          const m = /# expect: ([A-Z_, ]+)$/.exec(text);
          return m?.[1] ? m[1].split(",").map((code) => ({ code: code.trim(), line: i + 1 })) : [];
        });
      expect(multiset(marked), name).toEqual(multiset(readExpected(join(dir, name))));
    }
  });

  for (const name of files) {
    it(`invalid/${name} produces exactly its expected errors`, () => {
      const file = join(dir, name);
      const expected = readExpected(file);
      expect(expected.length).toBeGreaterThan(0);
      const diagnostics = diagnosticsOf(file, config);
      const errors = errorsOf(diagnostics);
      expect(multiset(errors), show(errors)).toEqual(multiset(expected));
      for (const d of errors) {
        expect(d.message.length).toBeGreaterThan(0);
        expect(typeof d.pointer).toBe("string");
      }
    });
  }
});

describe("examples", () => {
  const config = loadConfig(join(examples, "sluice.yml"));
  const files = yamlFiles(examples).filter((f) => f !== "sluice.yml");

  it("are there, each pointing the YAML language server at the flow schema", () => {
    expect(files.length).toBeGreaterThanOrEqual(7);
    for (const f of files) {
      expect(readFileSync(join(examples, f), "utf8").split("\n")[0]).toBe("# yaml-language-server: $schema=../schemas/flow.schema.json");
    }
  });

  for (const name of files) {
    it(`examples/${name} validates with examples/sluice.yml`, () => {
      const diagnostics = diagnosticsOf(join(examples, name), config);
      expect(show(diagnostics)).toBe("");
    });
  }

  it("use every step kind", () => {
    const kinds = new Set<string>();
    for (const f of files) {
      const result = validateFlow(readFileSync(join(examples, f), "utf8"), { file: f, config });
      for (const s of result.flow?.steps ?? []) kinds.add(s.kind);
    }
    expect([...kinds].sort()).toEqual(["db", "function", "github", "http", "kv", "llm", "notify", "search", "sleep", "ssh", "wait"]);
  });
});
