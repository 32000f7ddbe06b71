/**
 * `on.schedule` in local mode: the flows of the live release (the head of the default branch),
 * ticked with the server's scheduler logic (croner, each schedule's time zone). A tick is
 * claimed in the store under the server's delivery id before its run is created, so it runs
 * once however many workers share the store; what each schedule was checked up to is kept
 * (kv `sluice:schedules`), so a tick missed while no worker ran runs once, the latest of them.
 * A schedule counts from when a worker first sees it.
 */
import type { Local } from "../../app/local.js";
import { loadRelease } from "../../app/releases.js";
import type { Runtime } from "../../app/runtime.js";
import type { Flow } from "../../core/flow/types.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import type { Logger } from "../../ports/step-executor.js";
import { SCHEDULES_NAMESPACE, SCHEDULE_EVENT, latestTick, nextTick, scheduleDeliveryId, type ScheduleTick } from "../github/scheduler.js";

export interface LocalScheduler {
  /** Starts the runs of the ticks due at `now`; returns how many, and when the next tick falls. */
  tickOnce(now?: number): Promise<{ started: string[]; next: number | undefined }>;
}

export function createLocalScheduler(local: Local, rt: Runtime, logger: Logger): LocalScheduler {
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
