/**
 * The store behind every run: journals with compare-and-set appends, the next wake-up of each
 * run scheduled in the same transaction, leases, kv, callback tokens and webhook deliveries,
 * and the server's credentials: API tokens (hashed), its signing keys, generic-hook claims.
 * SQLite and PostgreSQL adapters implement it and run one contract suite
 * (test/adapters/store/contract.ts).
 */
import type { JournalEvent, Release } from "../core/engine/events.js";

export type RunStatus = "queued" | "running" | "waiting" | "succeeded" | "failed" | "cancelled" | "timed_out";

export const RUN_STATUSES: readonly RunStatus[] = ["queued", "running", "waiting", "succeeded", "failed", "cancelled", "timed_out"];

export const TERMINAL_STATUSES: readonly RunStatus[] = ["succeeded", "failed", "cancelled", "timed_out"];

/** Whether a run with this status has ended. */
export function isTerminal(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

export interface RunRecord {
  id: string;
  flow: string;
  /** The repository the run belongs to ("owner/name", or a local path's name); kv's namespace. */
  repo: string;
  status: RunStatus;
  release: Release;
  concurrencyGroup: string | null;
  createdAt: number;
  updatedAt: number;
  /** When the run next wants a worker (epoch ms), or null when it waits for a signal or ended. */
  wakeAt: number | null;
  /** Sequence number of the last event in the journal (the first event has seq 1). */
  seq: number;
}

export interface NewRun {
  id: string;
  flow: string;
  repo: string;
  status: RunStatus;
  release: Release;
  concurrencyGroup: string | null;
  createdAt: number;
  wakeAt: number | null;
  /** Callback tokens of the run's callback-wait steps, for POST /callbacks/<token>. */
  callbackTokens: { token: string; step: string }[];
}

export interface StoredEvent {
  seq: number;
  event: JournalEvent;
}

export interface RunFilter {
  flow?: string;
  repo?: string;
  status?: readonly RunStatus[];
  concurrencyGroup?: string;
  limit?: number;
}

export interface Delivery {
  id: string;
  /** `issue_comment`, `push`, `schedule`… */
  event: string;
  payload: unknown;
  receivedAt: number;
  attempts: number;
  lastError: string | null;
}

export interface KvEntry {
  key: string;
  value: unknown;
  version: number;
  /** Expiry (epoch ms) or null. */
  expiresAt: number | null;
}

/** An API token as the store keeps it: never the token itself, only its SHA-256. */
export interface ApiToken {
  /** A short public id (`tok_…`) to list and revoke it by. */
  id: string;
  /** The GitHub login the token acts as. */
  login: string;
  /** The one repository ("owner/name") the token reaches, or null for every repository. */
  repo: string | null;
  createdAt: number;
  /** When it stops working (epoch ms), or null. */
  expiresAt: number | null;
  /** When it was revoked (epoch ms), or null. */
  revokedAt: number | null;
}

export interface RunStore {
  /** Creates the run and its first events (seq 1..n) in one transaction. Throws on a duplicate id. */
  createRun(run: NewRun, events: JournalEvent[]): Promise<void>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** The whole journal, in order. */
  loadJournal(id: string): Promise<StoredEvent[]>;
  /**
   * Appends events after `expectedSeq` and sets the run's status and next wake-up in the same
   * transaction. Throws ConflictError when the journal's last seq is not `expectedSeq`.
   * Returns the new last seq.
   */
  append(
    id: string,
    expectedSeq: number,
    events: JournalEvent[],
    update: { status: RunStatus; wakeAt: number | null },
  ): Promise<number>;
  /** Sets only the next wake-up (a worker that found nothing to do before a time). */
  setWakeAt(id: string, wakeAt: number | null): Promise<void>;
  listRuns(filter?: RunFilter): Promise<RunRecord[]>;
  /**
   * Takes a lease on up to `limit` runs whose wakeAt <= now and whose lease is free or expired,
   * oldest wake-up first; returns them. A run leased by one owner is never returned to another
   * until the lease expires or is released.
   */
  claimDue(owner: string, now: number, leaseMs: number, limit: number): Promise<RunRecord[]>;
  /** Takes the lease on one run if it is free or expired (or already ours). */
  acquireLease(id: string, owner: string, now: number, leaseMs: number): Promise<boolean>;
  /** Releases the lease if `owner` holds it. */
  releaseLease(id: string, owner: string): Promise<void>;
  /** The earliest wakeAt among runs not leased at `now`, or null: lets a worker sleep precisely. */
  nextWakeAt(now: number): Promise<number | null>;
  findCallback(token: string): Promise<{ runId: string; step: string } | undefined>;

  // Inbox: webhook deliveries and schedule ticks, recorded before they are answered and
  // processed from the store, so a crash after the answer loses nothing.
  /** Records a delivery with its payload, once: false when the id was already recorded (a redelivery). */
  recordDelivery(d: { id: string; event: string; payload: unknown; receivedAt: number }): Promise<boolean>;
  /**
   * Leases up to `limit` unprocessed deliveries that are due (retryAt null or <= now) and whose
   * lease is free or expired, oldest first, adding one to their attempts.
   */
  claimDeliveries(owner: string, now: number, leaseMs: number, limit: number): Promise<Delivery[]>;
  /** Marks a delivery processed; with `retryAt`, releases it for a later attempt instead. */
  finishDelivery(id: string, outcome: { error?: string; retryAt?: number }): Promise<void>;

  // Outbox: what has been reported outside the engine (a check run) for each run. Each run's
  // report has a lease, so reporters of several processes never report one run at once.
  /**
   * Leases up to `limit` runs whose journal moved past what was reported (seq > reportedSeq;
   * never reported: 0) and whose report lease is free, expired (lease end <= now) or already
   * held by `owner`, oldest change first, and holds them for `owner` until `now + leaseMs`, in
   * one atomic step: a run leased by one owner is never returned to another until the lease
   * expires or is freed (markReported, releaseReport). A run never reported gets an outbox row
   * (reportedSeq 0, report null) to hold its lease; getReport shows it from then on.
   */
  claimUnreported(
    owner: string,
    now: number,
    leaseMs: number,
    limit: number,
  ): Promise<{ runId: string; repo: string; seq: number; reportedSeq: number; report: unknown }[]>;
  /** Frees the run's report lease if `owner` holds it, without reporting (a reporter backing off from the run). */
  releaseReport(runId: string, owner: string): Promise<void>;
  getReport(runId: string): Promise<{ reportedSeq: number; report: unknown } | undefined>;
  /**
   * Records that the run was reported up to `seq`, with the reporter's data (check run id…), and
   * frees the run's report lease, whoever holds it. Never moves backwards: a lower seq than the
   * recorded one changes nothing (the lease included). With `keepLease`, the lease is left as it
   * is (a reporter recording its progress half-way through a report).
   */
  markReported(runId: string, seq: number, report: unknown, opts?: { keepLease?: boolean }): Promise<void>;

  kvGet(namespace: string, key: string, now: number): Promise<KvEntry | undefined>;
  /**
   * Sets a value; with `ifVersion` only when the current version matches (0: key absent),
   * else throws ConflictError. Returns the new entry (versions start at 1 and grow by 1).
   */
  kvSet(
    namespace: string,
    key: string,
    value: unknown,
    opts: { now: number; ttlMs?: number; ifVersion?: number },
  ): Promise<KvEntry>;
  kvDelete(namespace: string, key: string): Promise<boolean>;
  /** Adds `by` to a numeric value (absent: 0) atomically. */
  kvIncr(namespace: string, key: string, by: number, now: number): Promise<KvEntry>;
  kvList(namespace: string, now: number, prefix?: string): Promise<KvEntry[]>;

  // Server credentials.
  /** Records a new token under the SHA-256 (hex) of its secret. Throws ConflictError on a duplicate id or hash. */
  createToken(token: ApiToken & { hash: string }): Promise<void>;
  /** The token whose secret hashes to `hash`, revoked or expired ones included (the caller decides). */
  findToken(hash: string): Promise<ApiToken | undefined>;
  /** Every token, newest first. */
  listTokens(): Promise<ApiToken[]>;
  /** Revokes a token (a second revocation keeps the first time); undefined when there is no such token. */
  revokeToken(id: string, at: number): Promise<ApiToken | undefined>;
  /**
   * The server key named `name`: `candidate` is stored if no key of that name exists yet, and
   * whichever key was stored first is returned, so every process sharing the store agrees.
   */
  serverKey(name: string, candidate: string): Promise<string>;
  /**
   * Claims every key of a generic-hook request (its signature, its delivery id) until
   * `expiresAt`, all or none, atomically: true when none of them was held (or all that were
   * had expired), false when one is held; then nothing is claimed. Expired claims are purged.
   */
  claimHookKeys(keys: readonly string[], now: number, expiresAt: number): Promise<boolean>;

  close(): Promise<void>;
}
