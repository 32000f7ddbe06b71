/**
 * `${{ }}` expressions through @actions/expressions, the implementation GitHub publishes, so
 * they behave exactly as in a workflow file. Parse at validation, evaluate at run time.
 */
import { Evaluator, Lexer, Parser, data } from "@actions/expressions";
import type { Expr } from "@actions/expressions";
import type { FunctionDefinition } from "@actions/expressions/funcs/info";
import { ContextAccess, IndexAccess, Literal } from "@actions/expressions/ast";

/** The contexts a flow may name (SPEC §2). There is no `secrets` context, on purpose. */
export const CONTEXTS = ["inputs", "steps", "github", "run", "callbacks"] as const;

/** Status functions, as in GitHub Actions `if:` conditions. */
const STATUS_FUNCTIONS = ["success", "failure", "always", "cancelled"] as const;

export interface ExprSpan {
  /** The text between `${{` and `}}`. */
  source: string;
  /** Offsets of `${{` and just past `}}` in the template. */
  start: number;
  end: number;
}

/**
 * Finds the `${{ … }}` spans of a template. A `}}` inside a single-quoted string literal does
 * not close the expression. An unclosed `${{` is returned with end = -1.
 */
export function findExpressions(template: string): ExprSpan[] {
  const spans: ExprSpan[] = [];
  let i = 0;
  while (true) {
    const start = template.indexOf("${{", i);
    if (start < 0) return spans;
    let j = start + 3;
    let inString = false;
    let end = -1;
    while (j < template.length) {
      const c = template[j];
      if (inString) {
        if (c === "'") {
          if (template[j + 1] === "'") j++;
          else inString = false;
        }
      } else if (c === "'") inString = true;
      else if (c === "}" && template[j + 1] === "}") {
        end = j + 2;
        break;
      }
      j++;
    }
    if (end < 0) {
      spans.push({ source: template.slice(start + 3), start, end: -1 });
      return spans;
    }
    spans.push({ source: template.slice(start + 3, end - 2), start, end });
    i = end;
  }
}

export class ExpressionSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExpressionSyntaxError";
  }
}

function statusFunctionInfos(): FunctionDefinition[] {
  return STATUS_FUNCTIONS.map((name) => ({ name, minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(true) }));
}

/** Parses one expression's source; throws ExpressionSyntaxError with the library's message. */
export function parseExpression(source: string): Expr {
  try {
    const lexed = new Lexer(source).lex();
    return new Parser(lexed.tokens, [...CONTEXTS], statusFunctionInfos()).parse();
  } catch (e) {
    throw new ExpressionSyntaxError(e instanceof Error ? e.message : String(e));
  }
}

/**
 * The property paths an expression reads: `steps.build.outputs.x` → ["steps","build","outputs","x"].
 * A path stops at the first index that is not a literal (`steps[x]` → ["steps"]).
 */
export function referencedPaths(expr: Expr): string[][] {
  const paths: string[][] = [];
  const pathOf = (e: Expr): string[] | undefined => {
    if (e instanceof ContextAccess) return [e.name.lexeme];
    if (e instanceof IndexAccess) {
      const base = pathOf(e.expr);
      if (!base) return undefined;
      if (e.index instanceof Literal && e.index.literal.kind === data.Kind.String) {
        return [...base, e.index.literal.coerceString()];
      }
      return base;
    }
    return undefined;
  };
  const visit = (e: unknown): void => {
    if (!e || typeof e !== "object") return;
    if (e instanceof ContextAccess || e instanceof IndexAccess) {
      const p = pathOf(e);
      if (p) {
        paths.push(p);
        if (e instanceof IndexAccess && !(e.index instanceof Literal)) visit(e.index);
        return;
      }
    }
    for (const v of Object.values(e)) {
      if (Array.isArray(v)) v.forEach(visit);
      else if (v && typeof v === "object" && "accept" in (v as object)) visit(v);
    }
  };
  visit(expr);
  return paths;
}

/** The evaluation context of a run at one point: plain JSON values. */
export interface ExprContext {
  inputs: Record<string, unknown>;
  steps: Record<string, { outputs: Record<string, unknown>; outcome: string | null }>;
  github: Record<string, unknown>;
  run: Record<string, unknown>;
  callbacks: Record<string, { url: string }>;
  /** For status functions: did any earlier step fail / was the run cancelled. */
  status: { failed: boolean; cancelled: boolean };
}

function toData(value: unknown): data.ExpressionData {
  return JSON.parse(JSON.stringify(value ?? null), data.reviver) as data.ExpressionData;
}

function fromData(value: data.ExpressionData): unknown {
  return JSON.parse(JSON.stringify(value, data.replacer)) as unknown;
}

/** Parsed expressions and the context keys they read, by source: a flow's expressions are few and evaluated often. */
const parsed = new Map<string, { expr: Expr; reads: Map<string, Set<string> | "all"> }>();
const PARSED_MAX = 10_000;

function parseForEvaluation(source: string): { expr: Expr; reads: Map<string, Set<string> | "all"> } {
  let hit = parsed.get(source);
  if (hit) return hit;
  const expr = parseExpression(source);
  // Per context, the keys the expression reads (`steps.build…` → build), or all of it.
  const reads = new Map<string, Set<string> | "all">();
  for (const [root, key] of referencedPaths(expr)) {
    if (root === undefined) continue;
    const seen = reads.get(root);
    if (key === undefined) reads.set(root, "all");
    else if (seen !== "all") reads.set(root, (seen ?? new Set<string>()).add(key));
  }
  if (parsed.size >= PARSED_MAX) parsed.clear();
  hit = { expr, reads };
  parsed.set(source, hit);
  return hit;
}

/** The part of a context an expression reads: what it names, never the rest (a run's `steps` grows with it). */
function readPart(value: unknown, reads: Set<string> | "all" | undefined): unknown {
  if (reads === undefined) return {};
  if (reads === "all" || value === null || typeof value !== "object") return value;
  const part: Record<string, unknown> = {};
  for (const key of reads) {
    const v = (value as Record<string, unknown>)[key];
    if (v !== undefined) part[key] = v;
  }
  return part;
}

function evaluateOne(source: string, ctx: ExprContext): data.ExpressionData {
  const { expr, reads } = parseForEvaluation(source);
  const dict = new data.Dictionary(
    ...CONTEXTS.map((key) => ({ key, value: toData(readPart(ctx[key], reads.get(key))) })),
  );
  const fns = new Map<string, FunctionDefinition>([
    ["success", { name: "success", minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(!ctx.status.failed && !ctx.status.cancelled) }],
    ["failure", { name: "failure", minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(ctx.status.failed) }],
    ["always", { name: "always", minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(true) }],
    ["cancelled", { name: "cancelled", minArgs: 0, maxArgs: 0, call: () => new data.BooleanData(ctx.status.cancelled) }],
  ]);
  return new Evaluator(expr, dict, fns).evaluate();
}

/**
 * Evaluates a template. A string that is exactly one `${{ }}` yields the expression's value with
 * its type (object, number, boolean...); any other string interpolates each expression as text.
 */
export function evaluateTemplate(template: string, ctx: ExprContext): unknown {
  const spans = findExpressions(template);
  if (spans.length === 0) return template;
  const only = spans[0];
  if (spans.length === 1 && only && only.start === 0 && only.end === template.length) {
    return fromData(evaluateOne(only.source, ctx));
  }
  let out = "";
  let last = 0;
  for (const span of spans) {
    if (span.end < 0) throw new ExpressionSyntaxError("unclosed ${{");
    out += template.slice(last, span.start) + evaluateOne(span.source, ctx).coerceString();
    last = span.end;
  }
  return out + template.slice(last);
}

/** Evaluates every string inside a value (objects and arrays walked), leaving other values. */
export function evaluateDeep(value: unknown, ctx: ExprContext): unknown {
  if (typeof value === "string") return evaluateTemplate(value, ctx);
  if (Array.isArray(value)) return value.map((v) => evaluateDeep(v, ctx));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = evaluateDeep(v, ctx);
    return out;
  }
  return value;
}

/** An `if:` condition: `${{ }}` optional, as in Actions; truthiness by the expression rules. */
export function evaluateCondition(condition: string, ctx: ExprContext): boolean {
  const trimmed = condition.trim();
  const spans = findExpressions(trimmed);
  const source =
    spans.length === 1 && spans[0] && spans[0].start === 0 && spans[0].end === trimmed.length
      ? spans[0].source
      : spans.length === 0
        ? trimmed
        : null;
  if (source === null) return Boolean(evaluateTemplate(trimmed, ctx));
  const result = evaluateOne(source, ctx);
  return truthy(result);
}

function truthy(v: data.ExpressionData): boolean {
  switch (v.kind) {
    case data.Kind.Null:
      return false;
    case data.Kind.Boolean:
      return (v as data.BooleanData).value;
    case data.Kind.Number: {
      const n = v.number();
      return n !== 0 && !Number.isNaN(n);
    }
    case data.Kind.String:
      return v.coerceString().length > 0;
    default:
      return true;
  }
}
