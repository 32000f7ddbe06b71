import { describe, expect, it } from "vitest";
import {
  evaluateCondition,
  evaluateTemplate,
  findExpressions,
  parseExpression,
  referencedPaths,
  type ExprContext,
} from "../../../src/core/expr/expressions.js";

const ctx: ExprContext = {
  inputs: { name: "ann", n: 3, on: true },
  steps: { plan: { outputs: { body: { pr: 12, files: ["a", "b"] } }, outcome: "success" } },
  github: { event: { label: { name: "flaky" } } },
  run: { id: "r1" },
  callbacks: { result: { url: "http://x/callbacks/t" } },
  status: { failed: false, cancelled: false },
};

describe("expressions", () => {
  it("finds spans, with }} inside a string literal not closing one", () => {
    expect(findExpressions("a ${{ x }} b ${{ 'y}}' }}").map((s) => s.source)).toEqual([" x ", " 'y}}' "]);
    expect(findExpressions("${{ open").at(0)?.end).toBe(-1);
  });

  it("a lone expression keeps its type; a template interpolates text", () => {
    expect(evaluateTemplate("${{ steps.plan.outputs.body }}", ctx)).toEqual({ pr: 12, files: ["a", "b"] });
    expect(evaluateTemplate("${{ inputs.n }}", ctx)).toBe(3);
    expect(evaluateTemplate("PR #${{ steps.plan.outputs.body.pr }} by ${{ inputs.name }}", ctx)).toBe("PR #12 by ann");
    expect(evaluateTemplate("${{ callbacks.result.url }}", ctx)).toBe("http://x/callbacks/t");
  });

  it("uses GitHub's functions and operators", () => {
    expect(evaluateTemplate("${{ format('{0}-{1}', inputs.name, run.id) }}", ctx)).toBe("ann-r1");
    expect(evaluateTemplate("${{ join(steps.plan.outputs.body.files, ',') }}", ctx)).toBe("a,b");
    expect(evaluateTemplate("${{ toJSON(inputs.n) }}", ctx)).toBe("3");
    expect(evaluateCondition("${{ github.event.label.name == 'FLAKY' }}", ctx)).toBe(true);
    expect(evaluateCondition("inputs.n > 5 || contains(inputs.name, 'n')", ctx)).toBe(true);
    expect(evaluateCondition("${{ inputs.missing }}", ctx)).toBe(false);
  });

  it("reports syntax errors and the paths an expression reads", () => {
    expect(() => parseExpression("inputs.name ==")).toThrow(/Unexpected/i);
    expect(() => parseExpression("secrets.TOKEN")).toThrow(/Unrecognized named-value/);
    expect(referencedPaths(parseExpression("steps.plan.outputs.body.pr == inputs['name'] && success()"))).toEqual([
      ["steps", "plan", "outputs", "body", "pr"],
      ["inputs", "name"],
    ]);
  });
});
