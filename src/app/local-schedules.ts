/**
 * `on.schedule` in local mode: the flows of the live release (the head of the default branch),
 * ticked with the server's scheduler logic (croner, each schedule's time zone). A tick is
 * claimed in the store under the server's delivery id before its run is created, so it runs
 * once however many workers share the store; what each schedule was checked up to is kept
 * (kv `sluice:schedules`), so a tick missed while no worker ran runs once, the latest of them.
 * A schedule counts from when a worker first sees it.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { SCHEDULES_NAMESPACE, SCHEDULE_EVENT, latestTick, nextTick, scheduleDeliveryId, type ScheduleTick } from "../adapters/github/scheduler.js";
import type { Flow } from "../core/flow/types.js";
import { resolveInputs } from "../core/flow/inputs.js";
import type { Logger } from "../ports/step-executor.js";
import type { Local } from "./local.js";
import { loadRelease } from "./releases.js";
import type { Runtime } from "./runtime.js";

export interface LocalScheduler {
  /** Starts the runs of the ticks due at `now`; returns how many, and when the next tick falls. */
  tickOnce(now?: number): Promise<{ started: string[]; next: number | undefined }>;
}

/** The checkout whose live release is ticked, and the store that keeps the ticks. */
export type ScheduledCheckout = Pick<Local, "source" | "repo" | "store">;

export function createLocalScheduler(local: ScheduledCheckout, rt: Runtime, logger: Logger): LocalScheduler {
  let cached: { sha: string; flows: Flow[]; release: Awaited<ReturnType<typeof loadRelease>>["release"]; config: Awaited<ReturnType<typeof loadRelease>>["config"] } | undefined;

  async function live() {
    const source = await local.source();
    const sha = await source.resolve(await source.defaultBranch());
    if (cached?.sha !== sha) {
      const loaded = await loadRelease(source);
      cached = { sha, release: loaded.release, config: loaded.config, flows: loaded.flows.flatMap((f) => (f.flow ? [f.flow] : [])) };
    }
    return cached;
  }

  async function tickOnce(now = rt.now()): Promise<{ started: string[]; next: number | undefined }> {
    const repo = await local.repo();
    const { flows, release, config } = await live();
    const started: string[] = [];
    let next: number | undefined;
    for (const flow of flows) {
      for (const [index, s] of (flow.on.schedule ?? []).entries()) {
        const timezone = s.timezone ?? "UTC";
        const key = `${repo}:${flow.name}:${index}:${timezone}:${s.cron}`;
        const entry = await local.store.kvGet(SCHEDULES_NAMESPACE, key, now);
        const checked = (entry?.value as { checked?: unknown } | undefined)?.checked;
        const tick = typeof checked === "number" ? latestTick(s.cron, timezone, checked, now) : undefined;
        if (tick) {
          const payload: ScheduleTick = { repo, flow: flow.name, cron: s.cron, timezone, at: tick.toISOString() };
          const id = scheduleDeliveryId(repo, flow.name, tick);
          if (await local.store.recordDelivery({ id, event: SCHEDULE_EVENT, payload, receivedAt: now })) {
            try {
              const run = await rt.createRun({
                flow,
                config,
                release,
                repo,
                inputs: resolveInputs(flow, {}),
                trigger: { type: "schedule", actor: "sluice:schedule", event: { schedule: s.cron, timezone, at: payload.at } },
              });
              started.push(run);
              logger.info("schedule tick started a run", { ...payload, run });
            } catch (e) {
              logger.warn("scheduled flow not started", { ...payload, error: e instanceof Error ? e.message : String(e) });
            } finally {
              // The claim is what makes the tick once; nothing else processes local ticks.
              await local.store.finishDelivery(id, {});
            }
          }
        }
        await local.store.kvSet(SCHEDULES_NAMESPACE, key, { checked: now }, { now });
        const n = nextTick(s.cron, timezone, now);
        if (n !== undefined) next = next === undefined ? n : Math.min(next, n);
      }
    }
    return { started, next };
  }

  return { tickOnce };
}

/**
 * Ticks the schedules until `signal` aborts, advancing each run a tick starts: wakes at the next
 * tick, and looks again at least every 30 s (the default branch moves).
 */
export async function runLocalSchedules(scheduler: LocalScheduler, rt: Runtime, logger: Logger, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    let next: number | undefined;
    try {
      const r = await scheduler.tickOnce();
      next = r.next;
      for (const id of r.started) void rt.advance(id).catch((e: unknown) => logger.error("advancing a scheduled run failed", { run: id, error: String(e) }));
    } catch (e) {
      logger.error("schedules could not be checked", { error: e instanceof Error ? e.message : String(e) });
    }
    const wait = Math.max(50, Math.min(30_000, next === undefined ? 30_000 : next - rt.now() + 5));
    await sleep(wait, undefined, { signal }).catch(() => undefined);
  }
}
