/**
 * Retention: what a server keeps, and for how long (`SLUICE_RETENTION_RUNS`, default 90d, or
 * `never`; `SLUICE_RETENTION_DELIVERIES`, default 14d). A pruning pass deletes ended runs older
 * than that (their journals, callback tokens and check-run report rows, and the bookkeeping kv
 * entries keyed by the run), the payloads of processed webhook deliveries older than theirs (the
 * ids stay, so that a replayed delivery is still refused), every expired kv
 * entry (the app's own bookkeeping namespaces included: delivery stages, command claims, leases)
 * and hook claim, and resources that no remaining run refers to and that were not stored again
 * within the runs' retention.
 *
 * One process prunes at a time, at most once an interval across every process on the store: the
 * pass is claimed by compare-and-set on a kv record (`sluice:retention`) that says who prunes,
 * until when, and when the last pass was.
 */
import { parseDuration } from "../../core/flow/duration.js";
import { ConflictError } from "../../core/errors.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import type { FileResourceStore } from "./file-resource-store.js";

export const RETENTION_NAMESPACE = "sluice:retention";

export interface RetentionConfig {
  /** How long an ended run is kept (ms), or null: forever. */
  runsMs: number | null;
  /** How long a processed webhook delivery's record is kept (ms). */
  deliveriesMs: number;
}

export const DEFAULT_RETENTION: RetentionConfig = { runsMs: 90 * 86_400_000, deliveriesMs: 14 * 86_400_000 };

/** SLUICE_RETENTION_RUNS and SLUICE_RETENTION_DELIVERIES: durations (`90d`); runs may be `never`. */
export function readRetentionEnv(env: NodeJS.ProcessEnv): { config: RetentionConfig; problems: string[] } {
  const problems: string[] = [];
  const read = (name: string, fallback: number, never: boolean): number | null => {
    const text = env[name];
    if (text === undefined || text === "") return fallback;
    if (never && text === "never") return null;
    try {
      const ms = parseDuration(text);
      if (ms >= 3_600_000) return ms;
    } catch {
      // named below
    }
    problems.push(`${name} must be a duration of an hour or more (90d, 36h)${never ? " or 'never'" : ""}, not '${text}'`);
    return fallback;
  };
  return {
    config: {
      runsMs: read("SLUICE_RETENTION_RUNS", DEFAULT_RETENTION.runsMs!, true),
      deliveriesMs: read("SLUICE_RETENTION_DELIVERIES", DEFAULT_RETENTION.deliveriesMs, false) ?? DEFAULT_RETENTION.deliveriesMs,
    },
    problems,
  };
}

export interface PruneReport {
  runs: number;
  deliveries: number;
  expired: number;
  resources: number;
}

export interface RetentionOptions {
  store: RunStore;
  resources?: Pick<FileResourceStore, "storedBefore" | "deleteStoredBefore">;
  config: RetentionConfig;
  logger: Logger;
  /** Who prunes (a process id). */
  owner: string;
  /** kv namespaces whose keys start with `<run id>:`: deleted with the run. */
  runNamespaces?: readonly string[];
  clock?: () => number;
  /** At most one pass per interval across the store's processes. Default 1 hour. */
  intervalMs?: number;
  /** Runs deleted per transaction. Default 100. */
  batch?: number;
}

export interface Retention {
  /** One pass now, if no other process prunes or pruned within the interval; undefined if not. */
  pruneOnce(opts?: { force?: boolean }): Promise<PruneReport | undefined>;
  start(signal: AbortSignal): Promise<void>;
}

interface Claim {
  owner: string;
  until: number;
  last?: number;
}

const RESOURCE_REF = /res:\/\/sha256\/([0-9a-f]{64})/g;

export function createRetention(opts: RetentionOptions): Retention {
  const { store, logger, config } = opts;
  const clock = opts.clock ?? Date.now;
  const intervalMs = opts.intervalMs ?? 3_600_000;
  const batch = opts.batch ?? 100;
  /** A pass holds its claim this long: another process takes over a dead one's after it. */
  const leaseMs = 15 * 60_000;

  async function claim(now: number, force: boolean): Promise<{ version: number; record: Claim } | undefined> {
    const found = await store.kvGet(RETENTION_NAMESPACE, "pass", now);
    const prior = found?.value as Claim | undefined;
    if (prior && prior.owner !== opts.owner && prior.until > now) return undefined;
    if (!force && prior?.last !== undefined && now - prior.last < intervalMs) return undefined;
    const record: Claim = { owner: opts.owner, until: now + leaseMs, ...(prior?.last !== undefined ? { last: prior.last } : {}) };
    try {
      return { version: (await store.kvSet(RETENTION_NAMESPACE, "pass", record, { now, ifVersion: found?.version ?? 0 })).version, record };
    } catch (e) {
      if (e instanceof ConflictError) return undefined;
      throw e;
    }
  }

  /** Every resource a remaining run's journal refers to. */
  async function referenced(): Promise<Set<string>> {
    const refs = new Set<string>();
    for (const r of await store.listRuns()) {
      for (const e of await store.loadJournal(r.id)) {
        for (const m of JSON.stringify(e.event).matchAll(RESOURCE_REF)) refs.add(m[1]!);
      }
    }
    return refs;
  }

  async function pass(now: number): Promise<PruneReport> {
    const report: PruneReport = { runs: 0, deliveries: 0, expired: 0, resources: 0 };
    if (config.runsMs !== null) {
      const before = now - config.runsMs;
      for (;;) {
        const ids = await store.pruneRuns(before, batch);
        report.runs += ids.length;
        for (const id of ids) {
          for (const ns of opts.runNamespaces ?? []) {
            for (const e of await store.kvList(ns, now, `${id}:`)) await store.kvDelete(ns, e.key);
          }
        }
        if (ids.length < batch) break;
      }
      if (opts.resources) {
        const candidates = await opts.resources.storedBefore(before);
        if (candidates.length) {
          const keep = await referenced();
          for (const hex of candidates) if (!keep.has(hex) && (await opts.resources.deleteStoredBefore(hex, before))) report.resources++;
        }
      }
    }
    report.deliveries = await store.pruneDeliveries(now - config.deliveriesMs);
    report.expired = await store.pruneExpired(now);
    return report;
  }

  async function pruneOnce(o: { force?: boolean } = {}): Promise<PruneReport | undefined> {
    const now = clock();
    const held = await claim(now, o.force ?? false);
    if (!held) return undefined;
    const report = await pass(now);
    // The pass is over: the record keeps when it was, and frees the claim.
    await store.kvSet(RETENTION_NAMESPACE, "pass", { owner: opts.owner, until: 0, last: now } satisfies Claim, { now: clock(), ifVersion: held.version }).catch((e: unknown) => {
      if (!(e instanceof ConflictError)) throw e;
    });
    logger.info("retention pass", { ...report });
    return report;
  }

  async function start(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await pruneOnce();
      } catch (e) {
        logger.warn("a retention pass failed; the next one tries again", { error: e instanceof Error ? e.message : String(e) });
      }
      if (signal.aborted) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(intervalMs, 10 * 60_000));
        function done() {
          clearTimeout(t);
          signal.removeEventListener("abort", done);
          resolve();
        }
        signal.addEventListener("abort", done, { once: true });
      });
    }
  }

  return { pruneOnce, start };
}
