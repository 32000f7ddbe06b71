/**
 * The store behind every run: journals with compare-and-set appends, the next wake-up of each
 * run scheduled in the same transaction, leases, kv, callback tokens and webhook deliveries,
 * and the server's credentials: API tokens (hashed), its signing keys, generic-hook claims.
 * SQLite and PostgreSQL adapters implement it and run one contract suite
 * (test/adapters/store/contract.ts).
 *
 * Durability (SPEC §4): every write is durable (fsynced) before it returns unless the caller
 * says otherwise; the engine's appends say so for everything a crash may cost at most a read's
 * re-run of. A store that cannot reach its database retries, with backoff, until the operator's
 * deadline; only then does it throw STORE_ERROR with `details.unavailable`.
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

export const TOKEN_KINDS = ["human", "agent"] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];

/** An API token as the store keeps it: never the token itself, only its SHA-256. */
export interface ApiToken {
  /** A short public id (`tok_…`) to list and revoke it by. */
  id: string;
  /** The GitHub login the token acts as. */
  login: string;
  /** The one repository ("owner/name") the token reaches, or null for every repository. */
  repo: string | null;
  /** A person's token decides gates; an agent's starts runs and reads, and never decides. */
  kind: TokenKind;
  createdAt: number;
  /** When it stops working (epoch ms), or null. */
  expiresAt: number | null;
  /** When it was revoked (epoch ms), or null. */
  revokedAt: number | null;
}

/**
 * A `kv` step's write, applied in the transaction that records the step's result, so the write
 * and the result commit together or not at all (exactly once, SPEC §4). It is a compare-and-set:
 * it applies only if the key's live version is still the one the step read.
 */
export interface KvWrite {
  namespace: string;
  key: string;
  /** The live version the step read (0: absent, or expired at `now`). */
  expectVersion: number;
  /** The time the step read the key at: what is live is judged at this time. */
  now: number;
  /** The entry the key holds after the write, or null: the key is deleted. */
  next: { value: unknown; version: number; expiresAt: number | null } | null;
}

export interface AppendUpdate {
  status: RunStatus;
  /** When the run next wants a worker (epoch ms), or null. */
  wakeAt: number | null;
  /**
   * Whether the commit must be durable (fsynced) before append returns. Default true. The engine
   * commits without it what a power loss may lose at the cost of re-running reads.
   */
  durable?: boolean;
  /**
   * Whether other processes are told (NOTIFY on PostgreSQL) that the run yields or is due.
   * Default: when `wakeAt` is not null.
   */
  notify?: boolean;
  /** A lease owner: its lease on the run is freed in the same transaction (an advance ending). */
  release?: string;
  /**
   * A kv write to apply in the same transaction: when the key moved since the step read it,
   * nothing is appended and append throws ConflictError with `details.kvKey`.
   */
  kv?: KvWrite;
}

export interface RunStore {
  /** Creates the run and its first events (seq 1..n) in one transaction. Throws on a duplicate id. */
  createRun(run: NewRun, events: JournalEvent[]): Promise<void>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** The whole journal, in order. */
  loadJournal(id: string): Promise<StoredEvent[]>;
  /**
   * Appends events after `expectedSeq` and sets the run's status and next wake-up in the same
   * transaction (with the lease release and the kv write `update` names). Throws ConflictError
   * when the journal's last seq is not `expectedSeq`. Returns the new last seq.
   */
  append(id: string, expectedSeq: number, events: JournalEvent[], update: AppendUpdate): Promise<number>;
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
  /**
   * Extends each lease that its owner still holds to `now + leaseMs` (a heartbeat, one statement
   * for all of a process's leases); returns those runs with their journal's last seq. A lease
   * not returned was lost: it expired and another owner took the run.
   */
  renewLeases(leases: readonly { id: string; owner: string }[], now: number, leaseMs: number): Promise<{ id: string; seq: number }[]>;
  /** Releases the lease if `owner` holds it. */
  releaseLease(id: string, owner: string): Promise<void>;
  /**
   * When a worker should next look for due runs, or null: the earliest wake-up among runs with
   * one, a run leased at `now` counting from when its lease expires (so a worker wakes when a
   * dead process's lease does).
   */
  nextWakeAt(now: number): Promise<number | null>;
  /**
   * Calls `listener` soon after another process gives a run a wake-up (PostgreSQL: LISTEN, with
   * the run id; SQLite: a commit by another connection, without one), and with no id after a
   * lost connection came back (anything may have been missed). Resolves once listening; the
   * returned function stops it.
   */
  onWake(listener: (runId?: string) => void): Promise<() => Promise<void>>;
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
  /**
   * Extends the leases `owner` holds on these unprocessed deliveries to `now + leaseMs` (a
   * heartbeat, so an inbox can keep its leases short and a dead process's deliveries come free
   * soon); returns the ids still held.
   */
  renewDeliveries(owner: string, ids: readonly string[], now: number, leaseMs: number): Promise<string[]>;
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

  // Retention (SPEC §7 operations): what a server keeps, pruned by one process at a time.
  /**
   * Deletes up to `limit` ended runs last updated before `before`, oldest first, each with its
   * journal, callback tokens and report row, in one transaction; returns their ids. A run that
   * has not ended is never deleted, however old.
   */
  pruneRuns(before: number, limit: number): Promise<string[]>;
  /**
   * Drops the payloads of processed deliveries received before `before` (never of one still to
   * process); returns how many. The id stays recorded: a replay of an old delivery is still
   * refused (GitHub's signatures carry no time, so a delivery id is the only replay guard).
   */
  pruneDeliveries(before: number): Promise<number>;
  /** Deletes kv entries and hook claims expired at `now`; returns how many. */
  pruneExpired(now: number): Promise<number>;

  close(): Promise<void>;
}
