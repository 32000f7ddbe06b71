/**
 * What the SQLite and PostgreSQL run stores share: JSON encoding with clear errors, argument
 * checks, and the shape of a migration.
 */
import { SluiceError } from "../../core/errors.js";
import type { KvWrite } from "../../ports/run-store.js";

export interface Migration {
  /** 1, 2, 3…: applied in order, each once, recorded in `schema_migrations`. */
  version: number;
  name: string;
  sql: string;
}

/** JSON text of a value to store; `undefined` is stored as null. Throws INPUT_INVALID otherwise. */
export function toJson(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new SluiceError("INPUT_INVALID", `${what} is not JSON-serialisable: ${(err as Error).message}`);
  }
  return text ?? "null";
}

export function fromJson(text: string): unknown {
  return JSON.parse(text) as unknown;
}

export function checkTime(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) {
    throw new SluiceError("INPUT_INVALID", `${what} must be an integer epoch-millisecond time, got ${String(value)}`);
  }
}

export function checkKey(namespace: string, key: string): void {
  if (typeof namespace !== "string" || namespace === "") {
    throw new SluiceError("INPUT_INVALID", "a kv namespace must be a non-empty string");
  }
  if (typeof key !== "string" || key === "") {
    throw new SluiceError("INPUT_INVALID", "a kv key must be a non-empty string", { namespace });
  }
  if (key.length > 512) {
    throw new SluiceError("INPUT_INVALID", `a kv key is at most 512 characters (got ${key.length})`, { namespace });
  }
}

export function checkTtl(ttlMs: number | undefined): void {
  if (ttlMs !== undefined && (!Number.isSafeInteger(ttlMs) || ttlMs <= 0)) {
    throw new SluiceError("INPUT_INVALID", `a kv ttl must be a positive whole number of milliseconds, got ${String(ttlMs)}`);
  }
}

export function checkIfVersion(ifVersion: number | undefined): void {
  if (ifVersion !== undefined && (!Number.isSafeInteger(ifVersion) || ifVersion < 0)) {
    throw new SluiceError("INPUT_INVALID", `if_version must be a whole number >= 0 (0: the key is absent), got ${String(ifVersion)}`);
  }
}

export function checkIncrement(by: number): void {
  if (typeof by !== "number" || !Number.isFinite(by)) {
    throw new SluiceError("INPUT_INVALID", `a kv increment must be a finite number, got ${String(by)}`);
  }
}

/** The value after adding `by` to the current one (absent: 0); throws KV_NOT_A_NUMBER otherwise. */
export function incremented(current: unknown, by: number, namespace: string, key: string): number {
  const base = current === undefined ? 0 : current;
  if (typeof base !== "number") {
    throw new SluiceError("KV_NOT_A_NUMBER", `kv key '${key}' holds a ${base === null ? "null" : typeof base}, not a number: it cannot be incremented`, {
      namespace,
      key,
    });
  }
  const next = base + by;
  if (!Number.isFinite(next)) {
    throw new SluiceError("KV_NOT_A_NUMBER", `incrementing kv key '${key}' overflows`, { namespace, key });
  }
  return next;
}

/** Checks a kv step's write and returns its new value as JSON text (null: the key is deleted). */
export function checkKvWrite(w: KvWrite): { value: string | null } {
  if (typeof w !== "object" || w === null) throw new SluiceError("INPUT_INVALID", "a kv write must be an object");
  checkKey(w.namespace, w.key);
  checkTime(w.now, "now");
  if (!Number.isSafeInteger(w.expectVersion) || w.expectVersion < 0) {
    throw new SluiceError("INPUT_INVALID", `a kv write expects a version >= 0, got ${String(w.expectVersion)}`, { namespace: w.namespace, key: w.key });
  }
  if (w.next === null) return { value: null };
  if (!Number.isSafeInteger(w.next.version) || w.next.version < 1) {
    throw new SluiceError("INPUT_INVALID", `a kv write's new version must be a whole number >= 1, got ${String(w.next.version)}`, { namespace: w.namespace, key: w.key });
  }
  if (w.next.expiresAt !== null) checkTime(w.next.expiresAt, "expiresAt");
  return { value: toJson(w.next.value, `the value of kv key '${w.key}'`) };
}

export function checkLimit(limit: number | undefined, what: string): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new SluiceError("INPUT_INVALID", `${what} must be a whole number >= 0, got ${String(limit)}`);
  }
}

/** The `updatedAt` an append records: the latest event time, or now when there is none. */
export function latestAt(events: readonly { at: number }[], fallback: number): number {
  let at = -Infinity;
  for (const e of events) if (typeof e.at === "number" && e.at > at) at = e.at;
  return Number.isFinite(at) ? at : fallback;
}

/** Checks a lease owner. */
export function checkOwner(owner: string): void {
  if (typeof owner !== "string" || owner === "") throw new SluiceError("INPUT_INVALID", "a lease owner must be a non-empty string");
}

export function checkLease(owner: string, leaseMs: number): void {
  checkOwner(owner);
  if (!Number.isSafeInteger(leaseMs) || leaseMs <= 0) {
    throw new SluiceError("INPUT_INVALID", `a lease lasts a positive whole number of milliseconds, got ${String(leaseMs)}`);
  }
}

/** Checks a delivery to record and returns its payload as JSON text. */
export function checkDelivery(d: { id: string; event: string; payload: unknown; receivedAt: number }): string {
  if (typeof d !== "object" || d === null) throw new SluiceError("INPUT_INVALID", "a delivery must be an object");
  if (typeof d.id !== "string" || d.id === "") throw new SluiceError("INPUT_INVALID", "a delivery id must be a non-empty string");
  if (d.id.length > 512) throw new SluiceError("INPUT_INVALID", `a delivery id is at most 512 characters (got ${d.id.length})`);
  if (typeof d.event !== "string" || d.event === "") {
    throw new SluiceError("INPUT_INVALID", `delivery '${d.id}' needs a non-empty event name`, { deliveryId: d.id });
  }
  checkTime(d.receivedAt, "receivedAt");
  return toJson(d.payload, `the payload of delivery '${d.id}'`);
}

/** Checks the outcome given to finishDelivery. */
export function checkOutcome(id: string, outcome: { error?: string; retryAt?: number }): void {
  if (typeof id !== "string" || id === "") throw new SluiceError("INPUT_INVALID", "a delivery id must be a non-empty string");
  if (typeof outcome !== "object" || outcome === null) {
    throw new SluiceError("INPUT_INVALID", `the outcome of delivery '${id}' must be an object`, { deliveryId: id });
  }
  if (outcome.error !== undefined && typeof outcome.error !== "string") {
    throw new SluiceError("INPUT_INVALID", `the error of delivery '${id}' must be a string`, { deliveryId: id });
  }
  if (outcome.retryAt !== undefined) checkTime(outcome.retryAt, "retryAt");
}

export function deliveryNotFound(id: string): SluiceError {
  return new SluiceError("NOT_FOUND", `no delivery '${id}' was recorded`, { deliveryId: id });
}

/** Checks the seq given to markReported against the run's last seq. */
export function checkReportedSeq(runId: string, seq: number, runSeq: number | undefined): void {
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new SluiceError("INPUT_INVALID", `a reported seq must be a whole number >= 0, got ${String(seq)}`, { runId });
  }
  if (runSeq === undefined) throw new SluiceError("RUN_NOT_FOUND", `no run '${runId}'`, { runId });
  if (seq > runSeq) {
    throw new SluiceError("INPUT_INVALID", `run '${runId}' cannot be reported up to seq ${seq}: its journal ends at seq ${runSeq}`, {
      runId,
      seq,
      runSeq,
    });
  }
}

/** Checks a token to record (the store keeps its hash, never the token). */
export function checkNewToken(t: { id: string; hash: string; login: string; repo: string | null; kind: string; createdAt: number; expiresAt: number | null; revokedAt: number | null }): void {
  if (typeof t !== "object" || t === null) throw new SluiceError("INPUT_INVALID", "a token must be an object");
  if (typeof t.id !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(t.id)) throw new SluiceError("INPUT_INVALID", `a token id is 1 to 64 letters, digits, _ or -, got '${String(t.id)}'`);
  if (typeof t.hash !== "string" || !/^[0-9a-f]{64}$/.test(t.hash)) throw new SluiceError("INPUT_INVALID", `token '${t.id}' needs the SHA-256 of its secret as 64 lowercase hex digits`, { id: t.id });
  if (typeof t.login !== "string" || t.login === "" || t.login.length > 100) throw new SluiceError("INPUT_INVALID", `token '${t.id}' needs a login of 1 to 100 characters`, { id: t.id });
  if (t.repo !== null && (typeof t.repo !== "string" || !/^[^/\s]+\/[^/\s]+$/.test(t.repo))) {
    throw new SluiceError("INPUT_INVALID", `token '${t.id}' is restricted to a repository as owner/name, not '${String(t.repo)}'`, { id: t.id });
  }
  if (t.kind !== "human" && t.kind !== "agent") throw new SluiceError("INPUT_INVALID", `token '${t.id}' is a human's or an agent's, not '${String(t.kind)}'`, { id: t.id });
  checkTime(t.createdAt, "createdAt");
  if (t.expiresAt !== null) checkTime(t.expiresAt, "expiresAt");
  if (t.revokedAt !== null) checkTime(t.revokedAt, "revokedAt");
}

export function checkKeyName(name: string, candidate: string): void {
  if (typeof name !== "string" || name === "" || name.length > 128) throw new SluiceError("INPUT_INVALID", "a server key's name is 1 to 128 characters");
  if (typeof candidate !== "string" || candidate.length < 16) throw new SluiceError("INPUT_INVALID", `server key '${name}' must be at least 16 characters`, { name });
}

/** Checks the keys of a hook claim and returns them without duplicates, sorted (a fixed lock order). */
export function checkHookKeys(keys: readonly string[], now: number, expiresAt: number): string[] {
  if (!Array.isArray(keys) || keys.length === 0) throw new SluiceError("INPUT_INVALID", "a hook claim needs at least one key");
  for (const k of keys) {
    if (typeof k !== "string" || k === "" || k.length > 512) throw new SluiceError("INPUT_INVALID", "a hook claim key is a string of 1 to 512 characters");
  }
  checkTime(now, "now");
  checkTime(expiresAt, "expiresAt");
  if (expiresAt <= now) throw new SluiceError("INPUT_INVALID", `a hook claim must expire after now (${now}), not at ${expiresAt}`);
  return [...new Set(keys)].sort();
}
