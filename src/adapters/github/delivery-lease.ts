/**
 * A lease on a delivery while its stages take effect, kept in the store (kv
 * `sluice:delivery-leases`, by compare-and-set) and renewed by a heartbeat. The inbox's own claim
 * on a delivery is short, so that the deliveries of a process that died are taken over within
 * seconds; a delivery whose handling outlasts that claim may then be claimed again by another
 * process, and this lease makes that process wait for it (a RetryAfterError) instead of running
 * the same stages alongside. A process that dies stops renewing: its lease lapses within
 * `leaseMs`. Deliveries that concern nothing (no stage applies) are never leased: they cost no
 * write.
 */
import { ConflictError, RetryAfterError } from "../../core/errors.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { errorText } from "./deps.js";

export const DELIVERY_LEASES_NAMESPACE = "sluice:delivery-leases";
export const DELIVERY_LEASE_MS = 15_000;

export interface DeliveryLease {
  /** Whether another process holds the delivery now (this one's renewals stopped in time). */
  lost(): boolean;
  /** Stops renewing; the lease lapses on its own. */
  end(): void;
}

interface Held {
  owner: string;
  until: number;
}

function busy(id: string, ms: number): RetryAfterError {
  return new RetryAfterError("STATE_CONFLICT", `delivery ${id} is being handled by another process`, Math.max(1_000, ms), { delivery: id });
}

export async function leaseDelivery(
  store: RunStore,
  id: string,
  opts: { owner: string; clock: () => number; logger: Logger; leaseMs?: number },
): Promise<DeliveryLease> {
  const leaseMs = opts.leaseMs ?? DELIVERY_LEASE_MS;
  const now = opts.clock();
  const current = await store.kvGet(DELIVERY_LEASES_NAMESPACE, id, now);
  const held = current?.value as Held | undefined;
  if (held && held.owner !== opts.owner) throw busy(id, held.until - now);
  const take = (at: number, ifVersion: number) =>
    store.kvSet(DELIVERY_LEASES_NAMESPACE, id, { owner: opts.owner, until: at + leaseMs } satisfies Held, { now: at, ttlMs: leaseMs, ifVersion });
  let version: number;
  try {
    version = (await take(now, current?.version ?? 0)).version;
  } catch (e) {
    if (e instanceof ConflictError) throw busy(id, leaseMs);
    throw e;
  }
  let lost = false;
  const timer = setInterval(() => {
    void take(opts.clock(), version).then(
      (entry) => {
        version = entry.version;
      },
      (e: unknown) => {
        if (e instanceof ConflictError) {
          lost = true;
          clearInterval(timer);
          opts.logger.warn("a delivery's lease was lost to another process; this one stops before its next stage", { delivery: id });
        } else {
          opts.logger.warn("a delivery's lease could not be renewed", { delivery: id, error: errorText(e) });
        }
      },
    );
  }, leaseMs / 3);
  timer.unref?.();
  return {
    lost: () => lost,
    end: () => clearInterval(timer),
  };
}
