/**
 * The `kv` step: a small versioned key-value store per repository (the namespace is the run's
 * repository; draft runs have the repository's draft namespace), kept in the run store. Exactly one of
 *   get: key                                   → value (null when absent), version (0 when absent)
 *   set: { key, value, ttl?, if_version? }     → value, version (if_version 0: only when absent)
 *   delete: key                                → value null, version 0, deleted
 *   incr: { key, by? } (or incr: key, by 1)    → value, version
 * A set whose `if_version` does not match is KV_VERSION_CONFLICT, never retried.
 *
 * A write is not made here: the executor reads the key and returns the write with its outputs,
 * and the runtime has the store apply it in the transaction that records the step's result, if
 * the key is still at the version read (SPEC §4: a kv write and its result commit together,
 * exactly once).
 */
import { NonRetriableError, SluiceError } from "../../core/errors.js";
import { kvNamespace } from "../../core/namespaces.js";
import type { KvEntry, KvWrite } from "../../ports/run-store.js";
import type { StepContext, StepExecutor, StepResult } from "../../ports/step-executor.js";
import { checkIfVersion, checkKey, checkTtl, incremented } from "../store/common.js";
import { abortError } from "./deadline.js";
import { isRecord, optDurationMs, optNumber, paramError, reqString, typeName, type Params } from "./params.js";

const KIND = "kv";
const OPERATIONS = ["get", "set", "delete", "incr"] as const;
type Operation = (typeof OPERATIONS)[number];
/** The largest value a key may hold, as JSON. */
export const KV_MAX_VALUE_BYTES = 1024 * 1024;

export const kvExecutor: StepExecutor = {
  kind: KIND,
  async execute(params, ctx): Promise<StepResult> {
    const ops = OPERATIONS.filter((op) => params[op] !== undefined && params[op] !== null);
    if (ops.length !== 1) {
      throw paramError(KIND, "get", "or 'set', 'delete', 'incr': give exactly one of them");
    }
    const op = ops[0] as Operation;
    if (ctx.signal.aborted) throw abortError(ctx.signal.reason);
    try {
      switch (op) {
        case "get": {
          const key = keyOf(params, "get");
          return entryResult(await ctx.store.kvGet(namespaceOf(ctx), key, ctx.now()));
        }
        case "set":
          return await set(params.set, ctx);
        case "delete": {
          const key = keyOf(params, "delete");
          const { current, write } = await read(ctx, key);
          return { outputs: { value: null, version: 0, deleted: current !== undefined }, kv: write(null) };
        }
        case "incr":
          return await incr(params.incr, ctx);
      }
    } catch (err) {
      throw stepError(err);
    }
  },
};

function namespaceOf(ctx: StepContext): string {
  return kvNamespace(ctx.repo, ctx.release.kind);
}

/** The key's live entry now, and the write that replaces it (applied only if it is still that entry). */
async function read(ctx: StepContext, key: string): Promise<{ current: KvEntry | undefined; now: number; write: (next: KvWrite["next"]) => KvWrite }> {
  const namespace = namespaceOf(ctx);
  checkKey(namespace, key);
  const now = ctx.now();
  const current = await ctx.store.kvGet(namespace, key, now);
  return { current, now, write: (next) => ({ namespace, key, expectVersion: current?.version ?? 0, now, next }) };
}

function keyOf(p: Params, name: string): string {
  const v = p[name];
  if (typeof v === "number") return String(v);
  if (typeof v !== "string") throw paramError(KIND, name, `must be a key (a string), not ${typeName(v)}`);
  return reqString(KIND, p, name);
}

function entryResult(entry: KvEntry | undefined, write?: KvWrite): StepResult {
  if (!entry) return { outputs: { value: null, version: 0 } };
  return {
    outputs: { value: entry.value, version: entry.version, expires_at: entry.expiresAt === null ? null : new Date(entry.expiresAt).toISOString() },
    ...(write ? { kv: write } : {}),
  };
}

async function set(spec: unknown, ctx: StepContext): Promise<StepResult> {
  if (!isRecord(spec)) throw paramError(KIND, "set", `must be a map {key, value, ttl?, if_version?}, not ${typeName(spec)}`);
  const key = keyOf(spec, "key");
  if (!("value" in spec)) throw paramError(KIND, "set.value", "is required (use null to store null)");
  const value = spec.value ?? null;
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw paramError(KIND, "set.value", `is not JSON: ${(err as Error).message}`);
  }
  if (json !== undefined && Buffer.byteLength(json) > KV_MAX_VALUE_BYTES) {
    throw paramError(KIND, "set.value", `is ${Buffer.byteLength(json)} bytes as JSON; a kv value holds at most ${KV_MAX_VALUE_BYTES}`);
  }
  const ttlMs = optDurationMs(KIND, spec, "ttl");
  const ifVersion = optNumber(KIND, spec, "if_version", { min: 0, integer: true });
  checkTtl(ttlMs === undefined ? undefined : Math.round(ttlMs));
  checkIfVersion(ifVersion);
  const { current, now, write } = await read(ctx, key);
  const version = current?.version ?? 0;
  if (ifVersion !== undefined && ifVersion !== version) {
    throw new NonRetriableError("KV_VERSION_CONFLICT", `kv: key '${key}' is at version ${version}, not ${ifVersion}`, {
      key,
      expected_version: ifVersion,
      actual_version: version,
    });
  }
  const next: KvEntry = { key, value: JSON.parse(json ?? "null") as unknown, version: version + 1, expiresAt: ttlMs !== undefined ? now + Math.round(ttlMs) : null };
  return entryResult(next, write({ value: next.value, version: next.version, expiresAt: next.expiresAt }));
}

async function incr(spec: unknown, ctx: StepContext): Promise<StepResult> {
  let key: string;
  let by = 1;
  if (typeof spec === "string") {
    key = keyOf({ incr: spec }, "incr");
  } else if (isRecord(spec)) {
    key = keyOf(spec, "key");
    by = optNumber(KIND, spec, "by") ?? 1;
  } else {
    throw paramError(KIND, "incr", `must be a key or a map {key, by}, not ${typeName(spec)}`);
  }
  const { current, write } = await read(ctx, key);
  const next: KvEntry = { key, value: incremented(current?.value, by, namespaceOf(ctx), key), version: (current?.version ?? 0) + 1, expiresAt: current?.expiresAt ?? null };
  return entryResult(next, write({ value: next.value, version: next.version, expiresAt: next.expiresAt }));
}

/** Bad input is the flow's fault (never retried); a store failure may pass, so it is retryable. */
function stepError(err: unknown): unknown {
  if (!(err instanceof SluiceError) || err instanceof NonRetriableError) return err;
  switch (err.code) {
    case "INPUT_INVALID":
      return new NonRetriableError("PARAM_INVALID", `kv: ${err.message}`, err.details);
    case "KV_NOT_A_NUMBER":
      return new NonRetriableError("KV_NOT_A_NUMBER", `kv: ${err.message}`, err.details);
    default:
      return err;
  }
}
