/**
 * The inbox: webhook deliveries and schedule ticks are recorded in the store before they are
 * answered, and processed from there (claim → handle → finish), so a crash after the answer
 * loses nothing. A delivery that fails is tried again with exponential backoff, up to
 * `maxAttempts`; a redelivered id was never recorded twice, so it is never processed twice.
 */
import { setTimeout as delay } from "node:timers/promises";
import { RetryAfterError } from "../../core/errors.js";
import type { Delivery, RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { errorText } from "./deps.js";

export interface InboxOptions {
  store: RunStore;
  logger: Logger;
  /** Who claims (the worker id): a claim is leased to one owner. */
  owner: string;
  handle(delivery: Delivery): Promise<void>;
  clock?: () => number;
  /**
   * How long a claim lasts before another process may take the delivery over (a process that
   * died). Default 20 s: short, so a dead process's deliveries are taken over soon; a delivery
   * whose stages take effect is also leased, with a heartbeat, while they run (delivery-lease.ts).
   */
  leaseMs?: number;
  /** Deliveries handled at once. Default 16 (handling waits for no GitHub write: the outbox sends them). */
  concurrency?: number;
  /** How often the store is asked when nothing wakes the loop (deliveries of other processes). Default 1 s. */
  pollMs?: number;
  /**
   * The least time between two claims (default 5 ms): under a stream of deliveries each claim
   * takes several at once in one transaction, instead of one transaction per delivery.
   */
  batchMs?: number;
  /** Attempts before a delivery is given up (kept in the store with its last error). Default 8. */
  maxAttempts?: number;
  /**
   * Until when GitHub holds the requests a delivery would make (epoch ms), if it does: a
   * delivery that fails then is tried again after the hold, however many attempts it took.
   */
  holdOf?: (delivery: Delivery) => Promise<number | undefined>;
  /**
   * Deliveries with the same key (an issue or pull request: dispatch.ts `deliveryKey`) are
   * handled one after another, oldest first; deliveries of other keys alongside.
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

/**
 * A loop's sleep that `wake()` cuts short (a wake before the sleep makes it return at once).
 * The timer and the abort listener go as soon as the sleep ends, however it ends: a loop woken
 * hundreds of times a second leaves nothing behind.
 */
export function wakeable(): { sleep(ms: number, signal: AbortSignal): Promise<void>; wake(): void } {
  let cut: (() => void) | undefined;
  let woken = false;
  return {
    wake() {
      woken = true;
      cut?.();
    },
    sleep(ms, signal) {
      if (woken || signal.aborted) {
        woken = false;
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          cut = undefined;
          woken = false;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
        cut = done;
      });
    },
  };
}

/** 5 s, 10 s, 20 s … up to 10 minutes. */
export function retryDelayMs(attempts: number): number {
  return Math.min(10 * 60_000, 5_000 * 2 ** Math.max(0, attempts - 1));
}

export function createInbox(opts: InboxOptions): Inbox {
  const clock = opts.clock ?? Date.now;
  const leaseMs = opts.leaseMs ?? 20_000;
  const concurrency = opts.concurrency ?? 16;
  const pollMs = opts.pollMs ?? 1_000;
  const batchMs = opts.batchMs ?? 5;
  const maxAttempts = opts.maxAttempts ?? 8;
  const inFlight = new Map<string, Promise<void>>();
  /** The last task of each key: the next one with that key starts after it. */
  const tails = new Map<string, Promise<void>>();
  const waker = wakeable();
  const wake = waker.wake;

  async function one(d: Delivery): Promise<void> {
    try {
      await opts.handle(d);
      await opts.store.finishDelivery(d.id, {});
      opts.logger.debug("delivery processed", { delivery: d.id, event: d.event, attempts: d.attempts });
    } catch (e) {
      const error = errorText(e);
      // GitHub holds the app's requests: come back when the hold ends, not sooner, and do not
      // count waiting for GitHub as a delivery that keeps failing.
      const hold = await opts.holdOf?.(d).catch(() => undefined);
      const heldUntil = Math.max(hold ?? 0, e instanceof RetryAfterError ? clock() + e.retryAfterMs : 0);
      if (d.attempts >= maxAttempts && heldUntil <= clock()) {
        opts.logger.error("delivery given up", { delivery: d.id, event: d.event, attempts: d.attempts, error });
        await opts.store.finishDelivery(d.id, { error }).catch(() => undefined);
      } else {
        const retryAt = Math.max(clock() + retryDelayMs(Math.min(d.attempts, maxAttempts)), heldUntil);
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
    let claimedAt = Number.NEGATIVE_INFINITY;
    while (!signal.aborted) {
      const early = claimedAt + batchMs - performance.now();
      if (early > 0) await delay(early, undefined, { signal }).catch(() => undefined);
      claimedAt = performance.now();
      let started = 0;
      try {
        started = (await claim()).length;
      } catch (e) {
        opts.logger.error("inbox claim failed", { error: errorText(e) });
      }
      if (started > 0 && inFlight.size < concurrency) continue;
      await waker.sleep(pollMs, signal);
    }
    await Promise.allSettled([...inFlight.values()]);
  }

  return { wake, processOnce, start };
}
