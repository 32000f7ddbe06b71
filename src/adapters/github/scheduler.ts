/**
 * `on.schedule` of live flows, with croner (five-field cron, IANA time zones). Each tick is
 * recorded in the store's inbox under the id `schedule:<repo>:<flow>:<iso>`, so it is claimed
 * exactly once however many processes look, and the inbox starts the run. What each schedule
 * was checked up to is kept in the store (kv `sluice:schedules`): ticks missed while no
 * process ran are run once, the latest of them, on start.
 */
import { setTimeout as delay } from "node:timers/promises";
import { Cron } from "croner";
import { pickFlow } from "../../app/releases.js";
import { SluiceError } from "../../core/errors.js";
import type { Flow } from "../../core/flow/types.js";
import { resolveInputs } from "../../core/flow/inputs.js";
import type { RunStore } from "../../ports/run-store.js";
import type { Logger } from "../../ports/step-executor.js";
import { GitHubFlowSource } from "../sources/github-flow-source.js";
import { errorText, startRun, type GitHubDeps } from "./deps.js";
import { asLoaded, listLiveReleases, liveSnapshot } from "./snapshot.js";

export const SCHEDULES_NAMESPACE = "sluice:schedules";
export const SCHEDULE_EVENT = "schedule";

export interface ScheduleTick {
  repo: string;
  flow: string;
  cron: string;
  timezone: string;
  /** The tick's time, ISO 8601 (UTC). */
  at: string;
}

export function scheduleDeliveryId(repo: string, flow: string, at: Date): string {
  return `schedule:${repo}:${flow}:${at.toISOString()}`;
}

/** The latest tick of a schedule in (from, now], or undefined. */
export function latestTick(cron: string, timezone: string, from: number, now: number): Date | undefined {
  const job = new Cron(cron, { timezone, paused: true });
  const [last] = job.previousRuns(1, new Date(now));
  return last && last.getTime() > from && last.getTime() <= now ? last : undefined;
}

/** The next tick of a schedule after `now`. */
export function nextTick(cron: string, timezone: string, now: number): number | undefined {
  const next = new Cron(cron, { timezone, paused: true }).nextRun(new Date(now));
  return next ? next.getTime() : undefined;
}

export interface SchedulerOptions {
  store: RunStore;
  logger: Logger;
  clock?: () => number;
  /** The valid flows of a repository's release at a SHA (cached by SHA by the caller). */
  flowsAt(repo: string, sha: string): Promise<Flow[]>;
  /** A tick was recorded: the inbox should look. */
  onTick?: () => void;
  /** The longest the loop sleeps (releases change). Default 30 s. */
  maxSleepMs?: number;
}

export interface Scheduler {
  /** Records the ticks due at `now`; returns how many were new, and when the next one falls. */
  tickOnce(now?: number): Promise<{ recorded: number; next: number | undefined }>;
  start(signal: AbortSignal): Promise<void>;
}

export function createScheduler(opts: SchedulerOptions): Scheduler {
  const clock = opts.clock ?? Date.now;
  const maxSleep = opts.maxSleepMs ?? 30_000;

  async function tickOnce(now = clock()): Promise<{ recorded: number; next: number | undefined }> {
    let recorded = 0;
    let next: number | undefined;
    for (const { repo, release } of await listLiveReleases(opts.store, now)) {
      let flows: Flow[];
      try {
        flows = await opts.flowsAt(repo, release.sha);
      } catch (e) {
        opts.logger.warn("schedules of a release could not be read", { repo, sha: release.sha, error: errorText(e) });
        continue;
      }
      for (const flow of flows) {
        for (const [index, s] of (flow.on.schedule ?? []).entries()) {
          const timezone = s.timezone ?? "UTC";
          const key = `${repo}:${flow.name}:${index}:${timezone}:${s.cron}`;
          try {
            const entry = await opts.store.kvGet(SCHEDULES_NAMESPACE, key, now);
            // A schedule counts from when its release went live, then from where it was last checked.
            const from = Math.max(release.at, typeof (entry?.value as { checked?: unknown })?.checked === "number" ? (entry?.value as { checked: number }).checked : release.at);
            const tick = latestTick(s.cron, timezone, from, now);
            if (tick) {
              const payload: ScheduleTick = { repo, flow: flow.name, cron: s.cron, timezone, at: tick.toISOString() };
              const fresh = await opts.store.recordDelivery({ id: scheduleDeliveryId(repo, flow.name, tick), event: SCHEDULE_EVENT, payload, receivedAt: now });
              if (fresh) {
                recorded++;
                opts.logger.info("schedule tick recorded", { ...payload });
              }
            }
            await opts.store.kvSet(SCHEDULES_NAMESPACE, key, { checked: now }, { now });
            const n = nextTick(s.cron, timezone, now);
            if (n !== undefined) next = next === undefined ? n : Math.min(next, n);
          } catch (e) {
            opts.logger.warn("schedule could not be checked", { repo, flow: flow.name, cron: s.cron, error: errorText(e) });
          }
        }
      }
    }
    if (recorded) opts.onTick?.();
    return { recorded, next };
  }

  async function start(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let next: number | undefined;
      try {
        ({ next } = await tickOnce());
      } catch (e) {
        opts.logger.error("scheduler turn failed", { error: errorText(e) });
      }
      const delay = Math.max(50, Math.min(maxSleep, next === undefined ? maxSleep : next - clock() + 5));
      await sleep(delay, signal);
    }
  }

  return { tickOnce, start };
}

/** Waits `ms`, or less when `signal` aborts; never rejects. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}

/** Starts the run of a recorded tick (the inbox calls it), from the live release at that time. */
export async function handleScheduleTick(deps: GitHubDeps, tick: ScheduleTick): Promise<void> {
  const api = await deps.installations.api(tick.repo);
  const live = await liveSnapshot(deps.store, new GitHubFlowSource(tick.repo, api), deps.runtime.now());
  let flow: Flow;
  try {
    flow = pickFlow(asLoaded(live.snapshot, live.release), tick.flow);
  } catch (e) {
    if (e instanceof SluiceError) {
      deps.logger.warn("scheduled flow is gone or invalid; tick skipped", { ...tick, error: e.message });
      return;
    }
    throw e;
  }
  if (!(flow.on.schedule ?? []).some((s) => s.cron === tick.cron && (s.timezone ?? "UTC") === tick.timezone)) {
    deps.logger.info("schedule no longer in the live release; tick skipped", { ...tick });
    return;
  }
  let inputs: Record<string, unknown>;
  try {
    inputs = resolveInputs(flow, {});
  } catch (e) {
    deps.logger.warn("scheduled flow not started: its inputs have no defaults", { ...tick, error: errorText(e) });
    return;
  }
  await startRun(deps, {
    flow,
    config: live.snapshot.config,
    release: live.release,
    repo: tick.repo,
    inputs,
    trigger: { type: "schedule", actor: "sluice:schedule", event: { schedule: tick.cron, timezone: tick.timezone, at: tick.at } },
  });
}
