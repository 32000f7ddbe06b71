import { describe, expect, it } from "vitest";
import { effectOf, effectUnder, requiresApproval } from "../../../src/core/policy/effects.js";
import { firstHttpAllow, firstHttpDeny, firstSshAllow, firstSshDeny, isSimpleCommand, matchesHttpRule } from "../../../src/core/policy/patterns.js";
import { policyRefusals } from "../../../src/core/policy/refusals.js";
import { explainedStatement, isReadQuery, isShowStatement, withoutTrailingSemicolons } from "../../../src/core/policy/sql.js";
import { validateConfig, validateFlow } from "../../../src/core/flow/validate.js";
import { DEFAULT_POLICY, type Config, type Policy, type Step } from "../../../src/core/flow/types.js";

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

const allowing = (http: string[] = [], ssh: string[] = []): Policy => ({ ...DEFAULT_POLICY, allow: { http, ssh } });

describe("http effects match the URL that will be requested", () => {
  const policy = allowing(["POST https://h/safe/**"]);
  const post = (url: string, extra: Record<string, unknown> = {}) => effectOf(step("http", { method: "POST", url, ...extra }), policy);

  it.each([
    "https://h/safe/x",
    "https://h/safe/a/b?c=d",
    "HTTPS://H/safe/x",
    "https://h:443/safe/x",
    "https://h./safe/x",
    "https://h//safe/x",
    "https://h/safe/%78",
    "https://h/danger/../safe/x",
  ])("POST %s is allowed: a read", (url) => expect(post(url)).toBe("read"));

  it.each([
    "https://h/safe/../danger",
    "https://h/safe/%2e%2e/danger",
    "https://h/safe/%2E%2E/danger",
    "https://h/safe/.%2e/danger",
    "https://h/safe\\..\\danger",
    "https://h/safe/x/../../danger",
    "https://h/safe/..%2Fdanger",
    "https://h/safe/..%5cdanger",
    "https://h:8443/safe/x",
    "http://h/safe/x",
    "https://user@h/safe/x",
    "https://h.evil/safe/x",
    "not a url",
  ])("POST %s is not allowed: a write", (url) => expect(post(url)).toBe("write"));

  it("rules are normalised too: scheme and host case, default port, unreserved escapes", () => {
    const p = allowing(["POST HTTPS://H:443/sa%66e/**"]);
    expect(effectOf(step("http", { method: "POST", url: "https://h/safe/x" }), p)).toBe("read");
    expect(matchesHttpRule("GET http://H:80//a/*", "GET", "http://h/a/b")).toBe(true);
  });

  it("a url under a connection's base_url is resolved there, and one that leaves it is a write", () => {
    const config = { policy: allowing(["POST https://h/api/safe/**"]), connections: { inv: { type: "http" as const, base_url: "https://h/api" } } };
    const http = (url: string) => effectUnder(step("http", { method: "POST", connection: "inv", url }), config);
    expect(http("safe/x")).toBe("read");
    expect(http("/safe/x")).toBe("read");
    expect(http("safe/../danger")).toBe("write");
    expect(http("safe/%2e%2e/../admin")).toBe("write");
    expect(http("https://h/api/safe/x")).toBe("read");
    expect(http("https://h/other/safe/x")).toBe("write");
  });

  it("query parameters are part of the URL a rule sees", () => {
    const p = allowing(["POST https://h/safe/x"]);
    expect(effectOf(step("http", { method: "POST", url: "https://h/safe/x" }), p)).toBe("read");
    expect(effectOf(step("http", { method: "POST", url: "https://h/safe/x", query: { a: 1 } }), p)).toBe("write");
  });

  it("a method override makes any request a write", () => {
    for (const name of ["X-HTTP-Method-Override", "x-method-override", "X-Http-Method", " X-HTTP-METHOD-OVERRIDE "]) {
      for (const method of ["GET", "HEAD", "OPTIONS", "POST"]) {
        expect(effectOf(step("http", { method, url: "https://h/safe/x", headers: { [name]: "DELETE" } }), policy)).toBe("write");
      }
    }
    expect(effectOf(step("http", { url: "https://h/x", headers: { Accept: "text/plain" } }), policy)).toBe("read");
  });

  it("a Host header makes any request a write; a path override voids an allow rule", () => {
    expect(effectOf(step("http", { url: "https://h/x", headers: { Host: "other" } }), policy)).toBe("write");
    expect(post("https://h/safe/x", { headers: { HOST: "h" } })).toBe("write");
    expect(post("https://h/safe/x", { headers: { "X-Original-URL": "/danger" } })).toBe("write");
    expect(post("https://h/safe/x", { headers: { "x-rewrite-url": "/danger" } })).toBe("write");
    expect(effectOf(step("http", { url: "https://h/x", headers: { "X-Original-URL": "/danger" } }), policy)).toBe("read");
  });

  it("headers that are an expression (not yet a map) make the request a write", () => {
    expect(effectOf(step("http", { url: "https://h/x", headers: "${{ inputs.headers }}" }), policy)).toBe("write");
  });
});

describe("http deny rules match every reading of the request", () => {
  const rules = ["* https://h/admin/**"];
  it.each([
    "https://h/admin/x",
    "https://h//admin/x",
    "https://h/safe/../admin/x",
    "https://h/safe/%2e%2e/admin/x",
    "https://h/safe/..%2Fadmin/x",
    "HTTPS://H:443/admin/x",
    "https://h./admin/x",
  ])("denies %s", (url) => expect(firstHttpDeny(rules, "GET", url)).toBe(rules[0]));

  it("leaves other URLs alone", () => {
    expect(firstHttpDeny(rules, "GET", "https://h/administrator")).toBeUndefined();
    expect(firstHttpDeny(rules, "GET", "https://h/safe/x")).toBeUndefined();
  });

  it("an allow rule never matches a path with an encoded separator", () => {
    expect(firstHttpAllow(["GET https://h/**"], "GET", "https://h/a%2Fb")).toBeUndefined();
    expect(firstHttpAllow(["GET https://h/**"], "GET", "https://h/a/b")).toBe("GET https://h/**");
  });
});

describe("ssh rules", () => {
  it.each([
    "uptime; rm -rf ~",
    "uptime && rm -rf ~",
    "uptime || rm -rf ~",
    "uptime | sh",
    "uptime & rm -rf ~",
    "uptime `rm -rf ~`",
    "uptime $(rm -rf ~)",
    "uptime > /etc/passwd",
    "uptime < /dev/zero",
    "uptime\nrm -rf ~",
    "uptime\rrm -rf ~",
    "uptime \\\nrm",
    "uptime *(e:'rm -rf ~':)",
    "(uptime)",
    "uptime\0",
    "BASH_ENV=/tmp/x uptime",
  ])("%j is not a single simple command, so no allow rule makes it a read", (run) => {
    expect(isSimpleCommand(run)).toBe(false);
    const policy = allowing([], ["^uptime", "uptime$", "uptime"]);
    expect(effectOf(step("ssh", { run }), policy)).toBe("write");
  });

  it("a simple command is matched with its whitespace normalised", () => {
    const policy = allowing([], ["^uptime -p$"]);
    expect(effectOf(step("ssh", { run: "  uptime \t  -p  " }), policy)).toBe("read");
    expect(firstSshAllow(["^uptime -p$"], "uptime\t-p")).toBe("^uptime -p$");
  });

  it("a step with env is never an allowed read (BASH_ENV, PATH, SHELL change what runs)", () => {
    const policy = allowing([], ["^uptime$"]);
    expect(effectOf(step("ssh", { run: "uptime", env: { BASH_ENV: "$(rm -rf ~)" } }), policy)).toBe("write");
    expect(effectOf(step("ssh", { run: "uptime", env: {} }), policy)).toBe("read");
  });

  const deny = ["rm -rf /"];
  it.each([
    ["rm -rf /", undefined],
    ["rm  -rf   /", undefined],
    ["rm\t-rf /", undefined],
    ["  rm -rf /  ", undefined],
    ["rm \\\n-rf /", undefined],
    ["r''m -rf \"/\"", undefined],
    ["\\rm -rf /", undefined],
    ["rm${IFS}-rf${IFS}/", undefined],
    ["rm$IFS-rf$IFS/", undefined],
    ["$CMD", { CMD: "rm -rf /" }],
    ["sh -c \"${X}\"", { X: "rm  -rf /" }],
  ])("deny matches %j (env %j)", (run, env) => {
    expect(firstSshDeny(deny, run, env)).toBe("rm -rf /");
  });
});

describe("policy refusals at validation", () => {
  const config = (policy: Partial<Policy>): Pick<Config, "policy" | "connections"> => ({
    policy: { ...DEFAULT_POLICY, ...policy },
    connections: { inv: { type: "http", base_url: "http://h/api/v1" } },
  });

  it("a static url that leaves its connection's base_url, a denied request, a Host header", () => {
    const c = config({ deny: { http: ["* http://h/admin/**"] } });
    expect(policyRefusals(step("http", { connection: "inv", url: "../admin" }), c)).toEqual([
      { code: "POLICY_DENIED", message: expect.stringMatching(/outside connection 'inv'/), path: "url" },
    ]);
    expect(policyRefusals(step("http", { url: "http://h/x/..//admin/y" }), c)).toEqual([
      { code: "POLICY_DENIED", message: expect.stringMatching(/deny.http rule/), path: "url" },
    ]);
    expect(policyRefusals(step("http", { url: "http://h/x", headers: { "Host": "evil" } }), c)).toEqual([
      { code: "POLICY_DENIED", message: expect.stringMatching(/cannot set the Host header/), path: "headers/Host" },
    ]);
    expect(policyRefusals(step("http", { connection: "inv", url: "${{ inputs.path }}" }), c)).toEqual([]);
  });

  it("ssh deny rules match the command's readings", () => {
    const c = config({ deny: { ssh: ["rm -rf /"] } });
    expect(policyRefusals(step("ssh", { run: "rm  -rf  /" }), c)).toEqual([
      { code: "POLICY_DENIED", message: expect.stringMatching(/deny.ssh rule 'rm -rf \/'/), path: "run" },
    ]);
  });

  it("validateFlow reports them on the right line", () => {
    const conf = validateConfig(`connections:\n  inv: { type: http, base_url: "http://h/api/v1" }\npolicy:\n  deny: { ssh: ["rm -rf /"] }\n`);
    expect(conf.diagnostics).toEqual([]);
    const flow = [
      "on: { manual: {} }",
      "steps:",
      "  - id: up",
      "    http: { connection: inv, url: ../admin, method: POST }",
      "  - id: wipe",
      "    ssh: { connection: vm, run: 'rm   -rf /' }",
      "",
    ].join("\n");
    const v = validateFlow(flow, { config: conf.config! });
    const denied = v.diagnostics.filter((d) => d.code === "POLICY_DENIED");
    expect(denied.map((d) => [d.pointer, d.line])).toEqual([
      ["/steps/0/http/url", 4],
      ["/steps/1/ssh/run", 6],
    ]);
  });
});

describe("sql helpers for the database's own verdict", () => {
  it("SHOW and EXPLAIN are read only in their plain spellings", () => {
    expect(isShowStatement("SHOW search_path;")).toBe(true);
    expect(isShowStatement("SHOW x; DELETE FROM t")).toBe(false);
    expect(explainedStatement("EXPLAIN SELECT 1")).toEqual({ analyze: false, statement: "SELECT 1" });
    expect(explainedStatement("explain (format json, analyze) select 1")).toEqual({ analyze: true, statement: "select 1" });
    expect(explainedStatement("EXPLAIN ANALYSE VERBOSE WITH a AS (SELECT 1) SELECT 1")?.analyze).toBe(true);
    for (const q of ['EXPLAIN ("analyze") SELECT 1', "EXPLAIN /**/ ANALYZE SELECT 1", "EXPLAIN\u00a0ANALYZE SELECT 1", "EXPLAIN (ANALYZE, FOO) SELECT 1"]) {
      expect(explainedStatement(q)).toBeUndefined();
    }
  });

  it("drops trailing semicolons and whitespace only", () => {
    expect(withoutTrailingSemicolons("SELECT 1 ; ;\n ")).toBe("SELECT 1");
    expect(withoutTrailingSemicolons("SELECT ';'")).toBe("SELECT ';'");
  });
});
