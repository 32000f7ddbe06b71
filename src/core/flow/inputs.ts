/** Manual inputs, typed like workflow_dispatch inputs: defaults, required, coercion from text. */
import { SluiceError } from "../errors.js";
import type { Flow, InputSpec } from "./types.js";

function coerce(name: string, spec: InputSpec, value: unknown): unknown {
  switch (spec.type) {
    case "boolean":
      if (typeof value === "boolean") return value;
      if (value === "true") return true;
      if (value === "false") return false;
      throw new Error(`input '${name}' must be true or false, not ${JSON.stringify(value)}`);
    case "number": {
      const n = typeof value === "number" ? value : typeof value === "string" && value.trim() !== "" ? Number(value) : NaN;
      if (!Number.isFinite(n)) throw new Error(`input '${name}' must be a number, not ${JSON.stringify(value)}`);
      return n;
    }
    case "choice":
      if (typeof value !== "string" || !(spec.options ?? []).includes(value)) {
        throw new Error(`input '${name}' must be one of ${(spec.options ?? []).join(", ")}, not ${JSON.stringify(value)}`);
      }
      return value;
    case "string":
    case "environment":
      if (typeof value === "string") return value;
      if (typeof value === "number" || typeof value === "boolean") return String(value);
      throw new Error(`input '${name}' must be a string, not ${JSON.stringify(value)}`);
  }
}

/**
 * The run's inputs from what was given: unknown names, missing required inputs and values of
 * the wrong type are one INPUT_INVALID error listing every problem.
 */
export function resolveInputs(flow: Flow, given: Record<string, unknown>): Record<string, unknown> {
  const specs = (flow.on.manual && flow.on.manual.inputs) || {};
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(given)) {
    if (!(name in specs)) problems.push(`unknown input '${name}' (declared: ${Object.keys(specs).join(", ") || "none"})`);
  }
  for (const [name, spec] of Object.entries(specs)) {
    const value = name in given ? given[name] : spec.default;
    if (value === undefined || value === null) {
      if (spec.required) problems.push(`input '${name}' is required${spec.description ? ` (${spec.description})` : ""}`);
      continue;
    }
    try {
      out[name] = coerce(name, spec, value);
    } catch (e) {
      problems.push(e instanceof Error ? e.message : String(e));
    }
  }
  if (problems.length) throw new SluiceError("INPUT_INVALID", problems.join("; "), { problems });
  return out;
}
