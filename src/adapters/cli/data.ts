/** Data commands: flows list, schema, resources get, kv get/set/list, secrets set/list. */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Cron } from "croner";
import { loadRelease, type LoadedRelease } from "../../app/releases.js";
import type { Local } from "../../app/local.js";
import { SluiceError } from "../../core/errors.js";
import { kvNamespace } from "../../core/namespaces.js";
import { parseDuration } from "../../core/flow/duration.js";
import type { Flow } from "../../core/flow/types.js";
import type { ResourceStore } from "../../ports/resource-store.js";
import type { RunStore } from "../../ports/run-store.js";
import { localTime } from "./format.js";
import { EXIT, table, usage, type Io, type Report } from "./output.js";

/** The package's schemas/ folder, found from this file in src/ or dist/src/. */
export function schemasDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      readFileSync(join(dir, "schemas", "flow.schema.json"));
      return join(dir, "schemas");
    } catch {
      dir = dirname(dir);
    }
  }
  throw new SluiceError("INTERNAL", "the schemas folder is missing from the installation");
}

export function schemaCommand(which: string | undefined): Report {
  if (which !== "flow" && which !== "config") throw usage("sluice schema flow|config");
  const schema = JSON.parse(readFileSync(join(schemasDir(), `${which}.schema.json`), "utf8")) as unknown;
  return { kind: "Schema", ok: true, data: schema, exitCode: EXIT.ok, human: JSON.stringify(schema, null, 2) };
}

/** How many of each schedule's next times `flows list` shows. */
const NEXT_TIMES = 3;

/** A flow's schedules with their next times, counted from `now` in each schedule's time zone. */
export function schedulesOf(flow: Flow | undefined, now: number): { cron: string; timezone: string; next: string[] }[] {
  return (flow?.on.schedule ?? []).map((s) => {
    const timezone = s.timezone ?? "UTC";
    const next = new Cron(s.cron, { timezone, paused: true }).nextRuns(NEXT_TIMES, new Date(now)).map((d) => d.toISOString());
    return { cron: s.cron, timezone, next };
  });
}

export async function flowsList(local: Local, ref: string | undefined, now = Date.now()): Promise<Report> {
  return flowsReport(await loadRelease(await local.source(), ref), now);
}

/** `flows list` of a release, read locally or (on the server) from GitHub. */
export function flowsReport(loaded: LoadedRelease, now: number): Report {
  const flows = loaded.flows.map((f) => ({
    name: f.flow?.name ?? f.path.split("/").pop()!.replace(/\.ya?ml$/, ""),
    path: f.path,
    valid: f.flow !== undefined,
    description: f.flow?.description ?? null,
    triggers: f.flow ? Object.keys(f.flow.on) : [],
    steps: f.flow?.steps.length ?? 0,
    errors: f.diagnostics.filter((d) => d.severity === "error").length,
    schedules: schedulesOf(f.flow, now),
  }));
  const r = loaded.release;
  const schedules = flows.flatMap((f) =>
    f.schedules.map((s) => `  ${f.name}: ${s.cron} (${s.timezone}) next ${s.next.map((t) => localTime(t, s.timezone)).join(", ")}`),
  );
  return {
    kind: "FlowList",
    ok: true,
    data: { release: r, flows },
    exitCode: EXIT.ok,
    human: [
      `${r.kind} release ${r.ref} @ ${r.sha.slice(0, 7)}`,
      flows.length
        ? table([["flow", "triggers", "steps", "file"], ...flows.map((f) => [f.valid ? f.name : `${f.name} (invalid: ${f.errors} errors)`, f.triggers.join(", "), String(f.steps), f.path])])
        : "no flows in .github/flows/",
      ...(schedules.length
        ? ["", r.kind === "live" ? "schedules (sluice worker, or the server, starts them):" : "schedules (they run only once this is the live release):", ...schedules]
        : []),
    ].join("\n"),
  };
}

export async function resourcesGet(local: Local, ref: string, out: string | undefined): Promise<Report> {
  return resourceReport((await local.runtime()).resources, ref, out);
}

/** A resource as `resources get` shows it (written to `out` when given). */
export async function resourceReport(resources: ResourceStore, ref: string, out: string | undefined): Promise<Report> {
  const res = await resources.get(ref);
  if (!res) throw new SluiceError("NOT_FOUND", `no resource ${ref}`, { ref });
  if (out) writeFileSync(out, res.data);
  const text = Buffer.from(res.data).toString("utf8");
  return {
    kind: "Resource",
    ok: true,
    data: { ref, size: res.data.byteLength, media_type: res.mediaType, ...(out ? { file: out } : { content: text }) },
    exitCode: EXIT.ok,
    human: out ? `wrote ${res.data.byteLength} bytes to ${out}` : text,
  };
}

function kvData(key: string, entry: { value: unknown; version: number; expiresAt: number | null } | undefined) {
  return { key, value: entry?.value ?? null, version: entry?.version ?? 0, expires_at: entry?.expiresAt ? new Date(entry.expiresAt).toISOString() : null };
}

export interface KvOptions {
  ttl?: string;
  ifVersion?: string;
  draft?: boolean;
}

export async function kvCommand(local: Local, sub: string | undefined, args: string[], opts: KvOptions): Promise<Report> {
  return kvReport(local.store, await local.repo(), sub, args, opts);
}

/** The key and value of `kv set <key> <value>`, locally or against a server: the value is JSON, or else a string. */
export function kvSetArgs(args: string[]): { key: string; value: unknown } {
  const [key, raw] = args;
  if (!key || raw === undefined) throw usage("sluice kv set <key> <value>   (the value is JSON, or else a string)");
  try {
    return { key, value: JSON.parse(raw) };
  } catch {
    return { key, value: raw };
  }
}

/** `kv get|set|list` on a repository's namespace (live, or the drafts' with `draft`). */
export async function kvReport(store: RunStore, repo: string, sub: string | undefined, args: string[], opts: KvOptions): Promise<Report> {
  const ns = kvNamespace(repo, opts.draft ? "draft" : "live");
  const now = Date.now();
  switch (sub) {
    case "get": {
      const [key] = args;
      if (!key) throw usage("sluice kv get <key>");
      const entry = await store.kvGet(ns, key, now);
      if (!entry) throw new SluiceError("NOT_FOUND", `no key '${key}' in ${opts.draft ? "the drafts' namespace" : "the live namespace"} of ${ns.replace(/#draft$/, "")} (it was never set, was deleted, or expired)`, { key });
      const data = kvData(key, entry);
      return { kind: "KvEntry", ok: true, data, exitCode: EXIT.ok, human: JSON.stringify(data.value) };
    }
    case "set": {
      const { key, value } = kvSetArgs(args);
      let ttlMs: number | undefined;
      if (opts.ttl) {
        try {
          ttlMs = parseDuration(opts.ttl);
        } catch (e) {
          throw usage(e instanceof Error ? e.message : String(e));
        }
      }
      const ifVersion = opts.ifVersion === undefined ? undefined : Number(opts.ifVersion);
      if (ifVersion !== undefined && !Number.isInteger(ifVersion)) throw usage("--if-version takes a whole number");
      const entry = await store.kvSet(ns, key, value, { now, ...(ttlMs ? { ttlMs } : {}), ...(ifVersion !== undefined ? { ifVersion } : {}) });
      const data = kvData(key, entry);
      return { kind: "KvEntry", ok: true, data, exitCode: EXIT.ok, human: `${key} = ${JSON.stringify(value)} (version ${entry.version})` };
    }
    case "list": {
      const entries = (await store.kvList(ns, now, args[0])).map((e) => kvData(e.key, e));
      return {
        kind: "KvList",
        ok: true,
        data: { entries },
        exitCode: EXIT.ok,
        human: entries.length ? table([["key", "version", "value"], ...entries.map((e) => [e.key, String(e.version), JSON.stringify(e.value).slice(0, 80)])]) : "no keys",
      };
    }
    default:
      throw usage("sluice kv get <key> | set <key> <value> [--ttl 10m] [--if-version N] | list [prefix]  (--draft: the drafts' namespace)");
  }
}

export async function secretsCommand(local: Local, sub: string | undefined, args: string[], io: Io): Promise<Report> {
  switch (sub) {
    case "set": {
      const [name] = args;
      if (!name) throw usage("sluice secrets set NAME   (the value is read from standard input)");
      if (!io.stdin) throw usage("sluice secrets set reads the value from standard input");
      const value = (await io.stdin()).replace(/\r?\n$/, "");
      if (!value) throw usage("the secret's value is empty: pipe it in, e.g. printf %s \"$TOKEN\" | sluice secrets set NAME");
      (await local.secrets()).set(name, value);
      return { kind: "Secret", ok: true, data: { name }, exitCode: EXIT.ok, human: `secret ${name} stored (encrypted with SLUICE_MASTER_KEY)` };
    }
    case "list": {
      const secrets = (await local.secrets()).list();
      return { kind: "SecretList", ok: true, data: { secrets }, exitCode: EXIT.ok, human: secrets.length ? table(secrets.map((s) => [s.name, s.source])) : "no secrets" };
    }
    default:
      throw usage("sluice secrets set NAME | list");
  }
}
