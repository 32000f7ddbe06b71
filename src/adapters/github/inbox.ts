/**
 * The inbox: webhook deliveries and schedule ticks are recorded in the store before they are
 * answered, and processed from there (claim → handle → finish), so a crash after the answer
 * loses nothing. A delivery that fails is tried again with exponential backoff, up to
 * `maxAttempts`; a redelivered id was never recorded twice, so it is never processed twice.
 */
import type { Delivery, RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { errorText } from "./deps.js";
import { sleep } from "./scheduler.js";

export interface InboxOptions {
  store: RunStore;
  logger: Logger;
  /** Who claims (the worker id): a claim is leased to one owner. */
  owner: string;
  handle(delivery: Delivery): Promise<void>;
  clock?: () => number;
  /** How long a claim lasts before another process may take the delivery over. Default 10 min. */
  leaseMs?: number;
  /** Deliveries handled at once. Default 4. */
  concurrency?: number;
  /** How often the store is asked when nothing wakes the loop (deliveries of other processes). Default 1 s. */
  pollMs?: number;
  /** Attempts before a delivery is given up (kept in the store with its last error). Default 8. */
  maxAttempts?: number;
  /**
   * Deliveries with the same key (a repository) are handled one after another, oldest first,
   * so that two events of one pull request never race to create its sticky comment.
   */
  keyOf?: (delivery: Delivery) => string | undefined;
}

export interface Inbox {
  /** Something was recorded: look now. */
  wake(): void;
  /** Claims and handles what is due, waiting for it; returns how many were handled. */
  processOnce(): Promise<number>;
  start(signal: AbortSignal): Promise<void>;
}

/** 5 s, 10 s, 20 s … up to 10 minutes. */
export function retryDelayMs(attempts: number): number {
  return Math.min(10 * 60_000, 5_000 * 2 ** Math.max(0, attempts - 1));
}

export function createInbox(opts: InboxOptions): Inbox {
  const clock = opts.clock ?? Date.now;
  const leaseMs = opts.leaseMs ?? 10 * 60_000;
  const concurrency = opts.concurrency ?? 4;
  const pollMs = opts.pollMs ?? 1_000;
  const maxAttempts = opts.maxAttempts ?? 8;
  const inFlight = new Map<string, Promise<void>>();
  /** The last task of each key: the next one with that key starts after it. */
  const tails = new Map<string, Promise<void>>();
  let woken = false;
  let wakeUp: (() => void) | undefined;

  function wake(): void {
    woken = true;
    wakeUp?.();
  }

  async function one(d: Delivery): Promise<void> {
    try {
      await opts.handle(d);
      await opts.store.finishDelivery(d.id, {});
      opts.logger.debug("delivery processed", { delivery: d.id, event: d.event, attempts: d.attempts });
    } catch (e) {
      const error = errorText(e);
      if (d.attempts >= maxAttempts) {
        opts.logger.error("delivery given up", { delivery: d.id, event: d.event, attempts: d.attempts, error });
        await opts.store.finishDelivery(d.id, { error }).catch(() => undefined);
      } else {
        const retryAt = clock() + retryDelayMs(d.attempts);
        opts.logger.warn("delivery failed; it will be tried again", { delivery: d.id, event: d.event, attempts: d.attempts, retry_at: new Date(retryAt).toISOString(), error });
        await opts.store.finishDelivery(d.id, { error, retryAt }).catch(() => undefined);
      }
    }
  }

  /** Claims what fits in the free slots and starts it; returns the tasks started. */
  async function claim(): Promise<Promise<void>[]> {
    const free = concurrency - inFlight.size;
    if (free <= 0) return [];
    const claimed = await opts.store.claimDeliveries(opts.owner, clock(), leaseMs, free);
    return claimed
      .filter((d) => !inFlight.has(d.id))
      .map((d) => {
        const key = opts.keyOf?.(d);
        const after = key !== undefined ? tails.get(key) : undefined;
        const run = after ? after.then(() => one(d)) : one(d);
        if (key !== undefined) {
          tails.set(key, run);
          void run.finally(() => tails.get(key) === run && tails.delete(key));
        }
        const task = run.finally(() => {
          inFlight.delete(d.id);
          wake();
        });
        inFlight.set(d.id, task);
        return task;
      });
  }

  async function processOnce(): Promise<number> {
    const tasks = await claim();
    await Promise.all(tasks);
    return tasks.length;
  }

  async function start(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      woken = false;
      let started = 0;
      try {
        started = (await claim()).length;
      } catch (e) {
        opts.logger.error("inbox claim failed", { error: errorText(e) });
      }
      if (started > 0 && inFlight.size < concurrency) continue;
      if (woken) continue;
      await Promise.race([
        sleep(pollMs, signal),
        new Promise<void>((resolve) => {
          wakeUp = resolve;
        }),
      ]);
      wakeUp = undefined;
    }
    await Promise.allSettled([...inFlight.values()]);
  }

  return { wake, processOnce, start };
}
