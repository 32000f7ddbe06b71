import { describe, expect, it } from "vitest";
import { effectOf, requiresApproval } from "../../../src/core/policy/effects.js";
import { matchesHttpRule } from "../../../src/core/policy/patterns.js";
import { isReadQuery } from "../../../src/core/policy/sql.js";
import { DEFAULT_POLICY, type Step } from "../../../src/core/flow/types.js";

const step = (kind: Step["kind"], params: unknown) => ({ kind, params });

describe("effects", () => {
  const cases: [string, ReturnType<typeof step>, string][] = [
    ["http GET reads", step("http", { url: "https://x" }), "read"],
    ["http HEAD reads", step("http", { method: "head", url: "https://x" }), "read"],
    ["http POST writes", step("http", { method: "POST", url: "https://x" }), "write"],
    ["db SELECT reads", step("db", { query: "select 1" }), "read"],
    ["db WITH … SELECT reads", step("db", { query: "WITH a AS (SELECT 1) SELECT * FROM a" }), "read"],
    ["db UPDATE writes", step("db", { query: "update t set a = 1" }), "write"],
    ["db WITH … DELETE writes", step("db", { query: "with d as (delete from t returning *) select * from d" }), "write"],
    ["kv get reads", step("kv", { get: "k" }), "read"],
    ["kv set writes", step("kv", { set: { key: "k", value: 1 } }), "write"],
    ["ssh writes", step("ssh", { run: "deploy" }), "write"],
    ["llm reads", step("llm", { prompt: "x" }), "read"],
    ["wait has no effect", step("wait", { callback: {} }), "none"],
  ];
  for (const [name, s, effect] of cases) it(name, () => expect(effectOf(s, DEFAULT_POLICY)).toBe(effect));

  it("allow rules turn matching writes into reads", () => {
    const policy = { ...DEFAULT_POLICY, allow: { ssh: ["^uptime$"], http: ["POST https://api.example.com/**"] } };
    expect(effectOf(step("ssh", { run: "uptime" }), policy)).toBe("read");
    expect(effectOf(step("ssh", { run: "uptime; rm -rf /" }), policy)).toBe("write");
    expect(effectOf(step("http", { method: "POST", url: "https://api.example.com/v1/x" }), policy)).toBe("read");
    expect(effectOf(step("http", { method: "POST", url: "https://api.example.com.evil/x" }), policy)).toBe("write");
  });

  it("default policy: writes gated, except notify, kv and GitHub comments", () => {
    expect(requiresApproval(step("http", {}), "write", DEFAULT_POLICY)).toBe(true);
    expect(requiresApproval(step("notify", {}), "write", DEFAULT_POLICY)).toBe(false);
    expect(requiresApproval(step("kv", {}), "write", DEFAULT_POLICY)).toBe(false);
    expect(requiresApproval(step("github", { comment: {} }), "write", DEFAULT_POLICY)).toBe(false);
    expect(requiresApproval(step("github", { merge_pull_request: {} }), "write", DEFAULT_POLICY)).toBe(true);
    expect(requiresApproval(step("http", {}), "read", DEFAULT_POLICY)).toBe(false);
  });
});

describe("patterns", () => {
  it("http rules: METHOD and URL glob, * within a segment, ** across", () => {
    expect(matchesHttpRule("* http://169.254.169.254/**", "GET", "http://169.254.169.254/latest/meta-data")).toBe(true);
    expect(matchesHttpRule("GET https://api.github.com/*", "GET", "https://api.github.com/repos/x")).toBe(false);
    expect(matchesHttpRule("GET https://api.github.com/**", "POST", "https://api.github.com/repos/x")).toBe(false);
  });

  it("sql: several statements are never a read", () => {
    expect(isReadQuery("select 1; delete from t")).toBe(false);
    expect(isReadQuery("-- comment\nSELECT 1;")).toBe(true);
    expect(isReadQuery("select * into t2 from t")).toBe(false);
    expect(isReadQuery("EXPLAIN ANALYZE DELETE FROM t")).toBe(false);
    expect(isReadQuery("EXPLAIN SELECT 1")).toBe(true);
  });
});
