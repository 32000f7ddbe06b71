/**
 * GitHub's official OpenAPI description (@octokit/openapi) as the simulator uses it: a route
 * table (method + path template → operation) and request validators compiled with ajv,
 * cached per operation. The description is loaded once per process.
 */
import { createRequire } from "node:module";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";

const require = createRequire(import.meta.url);
// ajv-formats is CommonJS with a default export; under NodeNext the function may sit one level down.
type AddFormats = (ajv: Ajv) => Ajv;
const addFormats = ((addFormatsModule as unknown as { default?: AddFormats }).default ??
  (addFormatsModule as unknown as AddFormats)) satisfies AddFormats;

type Json = any;

export type HttpMethod = "get" | "post" | "put" | "patch" | "delete" | "head" | "options";

export interface ParameterSpec {
  name: string;
  in: "path" | "query" | "header" | "cookie";
  required?: boolean;
  schema?: Json;
  multiSegment: boolean;
}

export interface Operation {
  method: HttpMethod;
  /** The path template, e.g. /repos/{owner}/{repo}/contents/{path}. */
  template: string;
  operationId: string;
  parameters: ParameterSpec[];
  requestBody?: { required: boolean; schema?: Json; contentTypes: string[] };
  /** Status → JSON schema of the documented answer. */
  responses: Record<string, Json | undefined>;
  /** False for the few routes GitHub serves that its description leaves out. */
  documented: boolean;
  regex: RegExp;
  paramNames: string[];
  literalSegments: number;
}

export interface RouteMatch {
  op: Operation;
  params: Record<string, string>;
}

export interface ValidationProblem {
  where: "path" | "query" | "body";
  message: string;
  errors?: ErrorObject[];
}

const SCHEMA_BASE = "https://simulator.invalid/openapi";

/** Deep copy that points local refs at the shared components schema and mends `nullable` without `type`. */
function prepare(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(prepare);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Record<string, Json> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === "$ref" && typeof v === "string" && v.startsWith("#/")) out[k] = SCHEMA_BASE + v;
    else out[k] = prepare(v);
  }
  // OpenAPI 3.0's `nullable` admits null, also next to an `enum` that does not list it.
  if (out.nullable === true && Array.isArray(out.enum) && !out.enum.includes(null)) out.enum = [...out.enum, null];
  if (out.nullable === true && out.type === undefined) {
    delete out.nullable;
    return { anyOf: [out, { type: "null" }] };
  }
  return out;
}

function compileTemplate(template: string, multi: Set<string>): { regex: RegExp; names: string[]; literals: number } {
  const names: string[] = [];
  let literals = 0;
  const parts = template
    .split("/")
    .slice(1)
    .map((seg) => {
      const m = /^\{([^}]+)\}$/.exec(seg);
      if (m) {
        const name = m[1] as string;
        names.push(name);
        return multi.has(name) ? "(.*?)" : "([^/]+)";
      }
      // Segments like {basehead} are whole; mixed literal/param segments do not occur in the paths used.
      if (seg.includes("{")) {
        return seg.replace(/\{([^}]+)\}/g, (_, name: string) => {
          names.push(name);
          return "([^/]+?)";
        });
      }
      literals++;
      return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    });
  return { regex: new RegExp(`^/${parts.join("/")}/?$`), names, literals };
}

/** Routes GitHub answers that the OpenAPI description does not list (kept to a minimum). */
const UNDOCUMENTED: { method: HttpMethod; template: string; operationId: string; multi?: string[] }[] = [
  { method: "get", template: "/repos/{owner}/{repo}/git/refs", operationId: "git/list-refs (undocumented)" },
  {
    method: "get",
    template: "/repos/{owner}/{repo}/git/refs/{ref}",
    operationId: "git/get-ref-legacy (undocumented)",
    multi: ["ref"],
  },
];

export class OpenApi {
  private static instance: OpenApi | undefined;
  private readonly operations: Operation[] = [];
  private readonly byTemplate = new Map<string, Operation>();
  private readonly bodyAjv: Ajv;
  private readonly paramAjv: Ajv;
  private readonly bodyValidators = new Map<string, ValidateFunction>();
  private readonly responseValidators = new Map<string, ValidateFunction>();
  private readonly paramValidators = new Map<string, { path: ValidateFunction; query: ValidateFunction }>();
  readonly version: string;

  /** The process-wide instance (the 13 MB description is parsed once). */
  static get(): OpenApi {
    OpenApi.instance ??= new OpenApi(require("@octokit/openapi/generated/api.github.com.json"));
    return OpenApi.instance;
  }

  private constructor(doc: Json) {
    this.version = String(doc.info?.version ?? "");
    const components = {
      $id: SCHEMA_BASE,
      components: { schemas: prepare(doc.components.schemas), parameters: prepare(doc.components.parameters) },
    };
    const opts = { strict: false, allErrors: true, validateSchema: false, logger: false } as const;
    this.bodyAjv = new Ajv({ ...opts });
    addFormats(this.bodyAjv);
    this.bodyAjv.addSchema(components);
    this.paramAjv = new Ajv({ ...opts, coerceTypes: "array" });
    addFormats(this.paramAjv);
    this.paramAjv.addSchema(components);

    const resolveParam = (p: Json): Json => (p?.$ref ? doc.components.parameters[String(p.$ref).split("/").pop() as string] : p);
    for (const [template, item] of Object.entries<Json>(doc.paths)) {
      const shared: Json[] = (item.parameters ?? []).map(resolveParam);
      for (const method of ["get", "post", "put", "patch", "delete"] as const) {
        const raw = item[method];
        if (!raw) continue;
        const parameters: ParameterSpec[] = [...shared, ...(raw.parameters ?? []).map(resolveParam)].map((p: Json) => ({
          name: p.name,
          in: p.in,
          required: p.required,
          schema: p.schema,
          multiSegment: p["x-multi-segment"] === true,
        }));
        const multi = new Set(parameters.filter((p) => p.multiSegment).map((p) => p.name));
        const { regex, names, literals } = compileTemplate(template, multi);
        const content = raw.requestBody?.content ?? {};
        const op: Operation = {
          method,
          template,
          operationId: raw.operationId,
          parameters,
          requestBody: raw.requestBody
            ? {
                required: raw.requestBody.required === true,
                schema: content["application/json"]?.schema,
                contentTypes: Object.keys(content),
              }
            : undefined,
          responses: Object.fromEntries(
            Object.entries<Json>(raw.responses ?? {}).map(([status, r]) => {
              const resolved = r?.$ref ? doc.components.responses[String(r.$ref).split("/").pop() as string] : r;
              return [status, resolved?.content?.["application/json"]?.schema];
            }),
          ),
          documented: true,
          regex,
          paramNames: names,
          literalSegments: literals,
        };
        this.operations.push(op);
        this.byTemplate.set(`${method.toUpperCase()} ${template}`, op);
      }
    }
    for (const u of UNDOCUMENTED) {
      const multi = new Set(u.multi ?? []);
      const { regex, names, literals } = compileTemplate(u.template, multi);
      const op: Operation = {
        method: u.method,
        template: u.template,
        operationId: u.operationId,
        parameters: names.map((n) => ({ name: n, in: "path", required: true, schema: { type: "string" }, multiSegment: multi.has(n) })),
        responses: {},
        documented: false,
        regex,
        paramNames: names,
        literalSegments: literals,
      };
      this.operations.push(op);
      this.byTemplate.set(`${u.method.toUpperCase()} ${u.template}`, op);
    }
  }

  /** The operation for "METHOD /template", if the description (or the undocumented list) has it. */
  operation(key: string): Operation | undefined {
    return this.byTemplate.get(key);
  }

  /**
   * The operation a request names. `rawPath` is the URL's path, still percent-encoded, without
   * the query string and without the /api/v3 prefix. The most specific template wins.
   */
  match(method: string, rawPath: string): RouteMatch | undefined {
    const m = method.toLowerCase();
    let best: { op: Operation; groups: string[]; multiUsed: number } | undefined;
    for (const op of this.operations) {
      if (op.method !== m) continue;
      const r = op.regex.exec(rawPath);
      if (!r) continue;
      const groups = r.slice(1);
      const multiUsed = groups.filter((g) => g.includes("/")).length;
      if (
        !best ||
        op.literalSegments > best.op.literalSegments ||
        (op.literalSegments === best.op.literalSegments && multiUsed < best.multiUsed)
      ) {
        best = { op, groups, multiUsed };
      }
    }
    if (!best) return undefined;
    const params: Record<string, string> = {};
    best.op.paramNames.forEach((name, i) => {
      const v = best.groups[i] ?? "";
      try {
        params[name] = decodeURIComponent(v);
      } catch {
        params[name] = v;
      }
    });
    return { op: best.op, params };
  }

  /** Validates a request's path and query parameters and its JSON body; returns the problems. */
  validate(
    op: Operation,
    req: { params: Record<string, string>; query: Record<string, string | string[]>; body: unknown; hasBody: boolean },
  ): ValidationProblem[] {
    const problems: ValidationProblem[] = [];
    const pv = this.paramValidatorsFor(op);
    const pathData: Record<string, unknown> = { ...req.params };
    if (!pv.path(pathData)) {
      problems.push({ where: "path", message: describe("path", pv.path.errors), errors: pv.path.errors ?? [] });
    }
    const declared = new Set(op.parameters.filter((p) => p.in === "query").map((p) => p.name));
    const unknown = Object.keys(req.query).filter((k) => !declared.has(k));
    if (unknown.length > 0 && op.documented) {
      problems.push({ where: "query", message: `unknown query parameter(s): ${unknown.join(", ")}` });
    }
    const queryData: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(req.query)) if (declared.has(k)) queryData[k] = v;
    if (!pv.query(queryData)) {
      problems.push({ where: "query", message: describe("query", pv.query.errors), errors: pv.query.errors ?? [] });
    }
    const rb = op.requestBody;
    if (!rb) {
      if (req.hasBody && op.method !== "get" && op.documented) {
        problems.push({ where: "body", message: "this operation takes no request body" });
      }
    } else if (!req.hasBody) {
      if (rb.required) problems.push({ where: "body", message: "a request body is required" });
    } else if (rb.schema) {
      const v = this.bodyValidatorFor(op);
      if (!v(req.body)) problems.push({ where: "body", message: describe("body", v.errors), errors: v.errors ?? [] });
    }
    return problems;
  }

  /**
   * Checks an answer against the documented schema for its status; returns the problem, if any.
   * (The simulator's own fidelity check: its answers should look like GitHub's.)
   */
  validateResponse(op: Operation, status: number, body: unknown): string | undefined {
    if (!op.documented || body === undefined) return undefined;
    const schema = op.responses[String(status)];
    if (!schema) return undefined;
    const key = `${op.method} ${op.template} ${status}`;
    let v = this.responseValidators.get(key);
    if (!v) {
      v = this.bodyAjv.compile(prepare(schema));
      this.responseValidators.set(key, v);
    }
    return v(body) ? undefined : describe("response", v.errors);
  }

  private bodyValidatorFor(op: Operation): ValidateFunction {
    const key = `${op.method} ${op.template}`;
    const cached = this.bodyValidators.get(key);
    if (cached) return cached;
    const v = this.bodyAjv.compile(prepare(op.requestBody?.schema ?? {}));
    this.bodyValidators.set(key, v);
    return v;
  }

  private paramValidatorsFor(op: Operation): { path: ValidateFunction; query: ValidateFunction } {
    const key = `${op.method} ${op.template}`;
    let v = this.paramValidators.get(key);
    if (!v) {
      const objectSchema = (where: "path" | "query"): Json => {
        const ps = op.parameters.filter((p) => p.in === where);
        return {
          type: "object",
          properties: Object.fromEntries(ps.map((p) => [p.name, prepare(p.schema ?? {})])),
          required: ps.filter((p) => p.required || where === "path").map((p) => p.name),
        };
      };
      v = { path: this.paramAjv.compile(objectSchema("path")), query: this.paramAjv.compile(objectSchema("query")) };
      this.paramValidators.set(key, v);
    }
    return v;
  }
}

/** GitHub-style text for ajv errors: "For 'properties/name', 1 is not a string." */
function describe(where: string, errors: ErrorObject[] | null | undefined): string {
  const list = (errors ?? []).slice(0, 10).map((e) => {
    const at = e.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "(root)";
    return `${where} ${at} ${e.message ?? "is invalid"}${e.params && Object.keys(e.params).length ? ` ${JSON.stringify(e.params)}` : ""}`;
  });
  return list.join("; ");
}
