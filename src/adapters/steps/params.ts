/**
 * Reading a step's evaluated parameters. A missing or mistyped parameter is a
 * NonRetriableError `PARAM_INVALID` that names the parameter.
 */
import { NonRetriableError } from "../../core/errors.js";

export type Params = Record<string, unknown>;

export function paramError(kind: string, name: string, message: string): NonRetriableError {
  return new NonRetriableError("PARAM_INVALID", `${kind}: '${name}' ${message}`, { parameter: name });
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

export function optString(kind: string, p: Params, name: string): string | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (typeof v !== "string") throw paramError(kind, name, `must be a string, not ${typeName(v)}`);
  return v;
}

export function reqString(kind: string, p: Params, name: string): string {
  const v = optString(kind, p, name);
  if (v === undefined || v === "") throw paramError(kind, name, "is required");
  return v;
}

export function optNumber(
  kind: string,
  p: Params,
  name: string,
  opts: { min?: number; max?: number; integer?: boolean } = {},
): number | undefined {
  let v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string" && v.trim() !== "" && Number.isFinite(Number(v))) v = Number(v);
  if (typeof v !== "number" || !Number.isFinite(v)) throw paramError(kind, name, `must be a number, not ${typeName(v)}`);
  if (opts.integer && !Number.isInteger(v)) throw paramError(kind, name, "must be an integer");
  if (opts.min !== undefined && v < opts.min) throw paramError(kind, name, `must be at least ${opts.min}`);
  if (opts.max !== undefined && v > opts.max) throw paramError(kind, name, `must be at most ${opts.max}`);
  return v;
}

export function optBoolean(kind: string, p: Params, name: string): boolean | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (v === "true") return true;
  if (v === "false") return false;
  if (typeof v !== "boolean") throw paramError(kind, name, `must be a boolean, not ${typeName(v)}`);
  return v;
}

/** A map of strings; numbers and booleans are turned into strings. */
export function optStringMap(kind: string, p: Params, name: string): Record<string, string> {
  const v = p[name];
  if (v === undefined || v === null) return {};
  if (!isRecord(v)) throw paramError(kind, name, `must be a map of strings, not ${typeName(v)}`);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (val === undefined || val === null) continue;
    if (typeof val === "string") out[k] = val;
    else if (typeof val === "number" || typeof val === "boolean") out[k] = String(val);
    else throw paramError(kind, `${name}.${k}`, `must be a string, not ${typeName(val)}`);
  }
  return out;
}

export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

/** Durations as in flows (`500ms 30s 10m 8h 7d`) or a number of seconds. */
export function optDurationMs(kind: string, p: Params, name: string): number | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "number" && Number.isFinite(v) && v > 0) return v * 1000;
  if (typeof v === "string") {
    const m = /^\s*([0-9]+)\s*(ms|s|m|h|d)?\s*$/.exec(v);
    if (m?.[1]) {
      const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "s"] ?? 1000;
      const ms = Number(m[1]) * unit;
      if (ms > 0) return ms;
    }
  }
  throw paramError(kind, name, "must be a duration such as 30s, 10m or 2h");
}

/** Cuts a string to its last `max` characters, saying so. */
export function tail(text: string, max = 2000): string {
  return text.length <= max ? text : `…${text.slice(text.length - max)}`;
}
