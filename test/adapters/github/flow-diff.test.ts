import { describe, expect, it } from "vitest";
import { chunk, fitSummary, toAnnotations } from "../../../src/adapters/github/annotations.js";
import { describeTriggers, diffFlows, diffHeadline, renderDiff, type FlowSet } from "../../../src/adapters/github/flow-diff.js";
import { DEFAULT_CONFIG, validateConfig, validateFlow } from "../../../src/core/flow/validate.js";
import type { Config, Diagnostic } from "../../../src/core/flow/types.js";

function set(files: Record<string, string>, config: Config = DEFAULT_CONFIG): FlowSet {
  return {
    config,
    flows: Object.entries(files).map(([path, text]) => {
      const v = validateFlow(text, { file: path, config });
      return { path, text, ...(v.flow ? { flow: v.flow } : {}), diagnostics: v.diagnostics };
    }),
  };
}

const READER = `on:
  manual:
steps:
  - id: fetch
    http: { url: https://example.com/a }
`;

const WRITER = `on:
  manual:
  schedule:
    - cron: "0 3 * * 1-5"
      timezone: Europe/Berlin
steps:
  - id: fetch
    http: { url: https://example.com/a }
  - id: ok
    wait:
      approval:
        approvers: { users: [ann], min: 1 }
  - id: push
    http: { method: POST, url: https://example.com/b }
`;

describe("diffFlows", () => {
  it("lists flows added, changed and removed, with their triggers and steps", () => {
    const before = set({ ".github/flows/a.yml": READER, ".github/flows/gone.yml": READER });
    const after = set({ ".github/flows/a.yml": WRITER, ".github/flows/new.yml": READER, ".github/flows/same.yml": READER });
    const withSame = set({ ".github/flows/a.yml": READER, ".github/flows/gone.yml": READER, ".github/flows/same.yml": READER });
    const diff = diffFlows(withSame, after);
    expect(diff.flows.map((f) => [f.name, f.change])).toEqual([
      ["new", "added"],
      ["a", "changed"],
      ["gone", "removed"],
      ["same", "unchanged"],
    ]);
    const a = diff.flows.find((f) => f.name === "a")!;
    expect(a.triggers).toEqual(["manual", "schedule `0 3 * * 1-5` (Europe/Berlin)"]);
    expect(a.triggersBefore).toEqual(["manual"]);
    expect(a.steps).toEqual({ added: ["ok", "push"], removed: [], changed: [] });
    expect(diffHeadline(diff)).toBe("1 added, 1 changed, 1 removed");
    expect(diffFlows(before, before).flows.every((f) => f.change === "unchanged")).toBe(true);
  });

  it("reports new write steps, new connections and changed approvers as risks", () => {
    const config = validateConfig(`connections:\n  api: { type: http, base_url: https://api.example.com, secret: API }\n`).config!;
    const before = set({ ".github/flows/a.yml": WRITER }, config);
    const changed = WRITER.replace("users: [ann], min: 1", "users: [ann, bob], min: 2").replace("url: https://example.com/b", "url: /v1/b, connection: api");
    const after = set({ ".github/flows/a.yml": changed }, config);
    expect(after.flows[0]?.diagnostics).toEqual([]);
    const risks = diffFlows(before, after).risks.map((r) => `${r.kind}: ${r.message}`);
    expect(risks).toContain("write_step: write step `push` (http) changed: covered by 'ok'");
    expect(risks).toContain("approvers: approvers of gate `ok`: users ann · min 1 → users ann, bob · min 2");
    expect(risks).toContain("connection: uses connection `api` (http, live+draft)");
  });

  it("says which gate covers each new write, and when a write's cover changes", () => {
    const before = set({ ".github/flows/a.yml": WRITER });
    const added = set({ ".github/flows/a.yml": `${WRITER}  - id: tag
    http: { method: PUT, url: https://example.com/tag }
` });
    expect(diffFlows(before, added).risks.map((r) => r.message)).toContain("new write step `tag` (http): covered by 'ok'");
    // The approval now lists what it covers, and push is not among them: its own gate guards it now.
    const narrowed = set({ ".github/flows/a.yml": `${WRITER.replace("approvers: { users: [ann], min: 1 }", "approvers: { users: [ann], min: 1 }\n        covers: [tag]")}  - id: tag\n    http: { method: PUT, url: https://example.com/tag }\n` });
    expect(narrowed.flows[0]?.diagnostics).toEqual([]);
    expect(diffFlows(added, narrowed).risks.map((r) => r.message)).toEqual(["write step `push` (http) is now its own gate (was covered by 'ok')"]);
  });

  it("reports config changes: new connections and policy", () => {
    const before = validateConfig("connections: {}\n").config!;
    const after = validateConfig(`connections:\n  prod: { type: postgres, secret: PROD, environments: [live] }\npolicy:\n  approvers: { teams: [acme/ops], min: 2 }\n  auto_approve: [read]\n`).config!;
    const risks = diffFlows(set({}, before), set({}, after)).risks.map((r) => r.message);
    expect(risks).toEqual([
      "new connection `prod` (postgres, live)",
      "policy approvers: permission write · min 1 → teams acme/ops · min 2",
      'policy.auto_approve: ["read","notify","kv"] → ["read"]',
    ]);
  });

  it("reports an invalid flow as such, and says when nothing is risky", () => {
    const after = set({ ".github/flows/bad.yml": "on: {}\nsteps: []\n" });
    const diff = diffFlows(undefined, after);
    expect(diff.flows[0]).toMatchObject({ name: "bad", change: "added", valid: false });
    const md = renderDiff(diff);
    expect(md).toContain("`bad` ⚠️ invalid");
    expect(md).toContain("None: no new write steps, connections or approvers.");
  });

  it("describes every kind of trigger", () => {
    const flow = validateFlow(`on:\n  manual:\n    inputs:\n      x: { type: string }\n  github:\n    - event: issues\n      actions: [labeled, opened]\n      if: \${{ true }}\n  webhook: { secret: S }\nsteps:\n  - id: a\n    sleep: 1s\n`).flow;
    expect(describeTriggers(flow)).toEqual(["manual (x)", "github `issues.labeled|opened` if …", "webhook"]);
  });
});

describe("annotations", () => {
  const d = (line: number, column = 3, severity: Diagnostic["severity"] = "error"): Diagnostic => ({ severity, code: "FLOW_SCHEMA", message: "bad", line, column, pointer: "/steps/0", file: ".github/flows/a.yml" });

  it("puts each diagnostic on its file and line, a warning as a warning, unknown positions on line 1", () => {
    expect(toAnnotations([d(4), d(0, 0, "warning")], "x")).toEqual([
      { path: ".github/flows/a.yml", start_line: 4, end_line: 4, start_column: 3, end_column: 3, annotation_level: "failure", message: "bad", title: "FLOW_SCHEMA at /steps/0" },
      { path: ".github/flows/a.yml", start_line: 1, end_line: 1, annotation_level: "warning", message: "bad", title: "FLOW_SCHEMA at /steps/0" },
    ]);
  });

  it("sends annotations 50 at a time and cuts a summary to GitHub's limit", () => {
    expect(chunk(Array.from({ length: 120 }, (_, i) => i)).map((c) => c.length)).toEqual([50, 50, 20]);
    expect(chunk([])).toEqual([]);
    const long = fitSummary("x".repeat(70_000));
    expect(long.length).toBe(65_535);
    expect(long.endsWith("_… cut to fit GitHub's limit on a check run's summary._")).toBe(true);
    expect(fitSummary("short")).toBe("short");
  });
});
