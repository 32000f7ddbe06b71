/**
 * Flows and config at a commit, validated, and the live release of each repository: the SHA of
 * the default branch that last released flows, kept in the store (kv namespace
 * `sluice:releases`, key `owner/repo`) so schedules and event triggers follow it.
 */
import type { Release } from "../../core/engine/events.js";
import { SluiceError } from "../../core/errors.js";
import type { Config, Diagnostic } from "../../core/flow/types.js";
import { DEFAULT_CONFIG, validateConfig, validateFlow, type ConfigValidation, type FlowValidation } from "../../core/flow/validate.js";
import { MAX_FLOW_FILE_BYTES, flowTooLarge } from "../../core/flow/yaml-source.js";
import type { LoadedRelease } from "../../app/releases.js";
import { CONFIG_PATH } from "../../ports/flow-source.js";
import type { RunStore } from "../../ports/run-store.js";
import { ShaCache, type SizedFlowFile, type SizedFlowSource } from "../sources/github-flow-source.js";
import type { FlowSetEntry } from "./flow-diff.js";

export const RELEASES_NAMESPACE = "sluice:releases";

export interface LiveRelease {
  sha: string;
  /** The default branch the release came from. */
  ref: string;
  /** When it was recorded (epoch ms). */
  at: number;
  previous?: string;
}

export interface Snapshot {
  sha: string;
  config: Config;
  /** The config file's text at the commit it was read from, when there is one. */
  configText?: string;
  configDiagnostics: Diagnostic[];
  /** False when the config file exists and is invalid (the default config stands in). */
  configValid: boolean;
  flows: FlowSetEntry[];
}

/**
 * FLOW_TOO_LARGE for a file the source did not download because GitHub says it is over the
 * limit (validation refuses text over it too, but here there is no text to measure).
 */
function tooLarge(file: SizedFlowFile): { diagnostics: Diagnostic[] } | undefined {
  return file.size > MAX_FLOW_FILE_BYTES ? { diagnostics: [flowTooLarge(file.size, file.path)] } : undefined;
}

/** The config at a commit: validated; the default config when there is no file. */
export async function configAt(source: SizedFlowSource, sha: string): Promise<Pick<Snapshot, "config" | "configText" | "configDiagnostics" | "configValid">> {
  const file = await source.configFile(sha);
  if (!file) return { config: DEFAULT_CONFIG, configDiagnostics: [], configValid: true };
  const v: ConfigValidation = tooLarge(file) ?? validateConfig(file.text, { file: file.path });
  return { config: v.config ?? DEFAULT_CONFIG, configText: file.text, configDiagnostics: v.diagnostics, configValid: v.config !== undefined };
}

/**
 * The flows at `sha`, validated against a config: by default the config at the same commit,
 * or the one given (a draft is checked against the default branch's config).
 */
export async function snapshotAt(source: SizedFlowSource, sha: string, config?: Pick<Snapshot, "config" | "configText" | "configDiagnostics" | "configValid">): Promise<Snapshot> {
  const c = config ?? (await configAt(source, sha));
  const files = await source.flowFiles(sha);
  const flows = files.map((f): FlowSetEntry => {
    const v: FlowValidation = tooLarge(f) ?? validateFlow(f.text, { file: f.path, config: c.config });
    return { path: f.path, text: f.text, ...(v.flow ? { flow: v.flow } : {}), diagnostics: v.diagnostics };
  });
  return { sha, ...c, flows };
}

/** Every diagnostic of a snapshot: the config's, then each flow's. */
export function allDiagnostics(s: Snapshot): Diagnostic[] {
  return [...s.configDiagnostics.map((d) => ({ ...d, file: d.file ?? CONFIG_PATH })), ...s.flows.flatMap((f) => f.diagnostics.map((d) => ({ ...d, file: d.file ?? f.path })))];
}

/** The shape `pickFlow` takes. */
export function asLoaded(s: Snapshot, release: Release): LoadedRelease {
  return { release, config: s.config, flows: s.flows.map((f) => ({ path: f.path, ...(f.flow ? { flow: f.flow } : {}), diagnostics: f.diagnostics })) };
}

export async function getLiveRelease(store: RunStore, repo: string, now: number): Promise<LiveRelease | undefined> {
  const entry = await store.kvGet(RELEASES_NAMESPACE, repo, now);
  return entry ? (entry.value as LiveRelease) : undefined;
}

export async function setLiveRelease(store: RunStore, repo: string, release: LiveRelease, now: number): Promise<void> {
  await store.kvSet(RELEASES_NAMESPACE, repo, release, { now });
}

export async function listLiveReleases(store: RunStore, now: number): Promise<{ repo: string; release: LiveRelease }[]> {
  return (await store.kvList(RELEASES_NAMESPACE, now)).map((e) => ({ repo: e.key, release: e.value as LiveRelease }));
}

/** Validated snapshots of releases (flows and config at one commit), by repository and SHA. */
const releaseSnapshots = new ShaCache(500);

/** The snapshot of a release: the flows at `sha` validated against the config at `sha`; cached. */
export function releaseSnapshotAt(source: SizedFlowSource, sha: string): Promise<Snapshot> {
  return releaseSnapshots.get(`release:${source.repo}@${sha}`, () => snapshotAt(source, sha));
}

export interface LiveSnapshotOptions {
  /** The default branch as the webhook's payload names it (`repository.default_branch`): not read again. */
  defaultBranch?: string;
  /** What one delivery's stages share: the live release is looked up once per delivery. */
  memo?: Map<string, Promise<unknown>>;
}

/**
 * The live release of a repository and its snapshot: the recorded release, else the head of
 * the default branch (a repository whose flows came before the app was installed).
 */
export function liveSnapshot(store: RunStore, source: SizedFlowSource, now: number, opts: LiveSnapshotOptions = {}): Promise<{ release: Release; snapshot: Snapshot }> {
  const key = `live:${source.repo.toLowerCase()}`;
  const hit = opts.memo?.get(key);
  if (hit) return hit as Promise<{ release: Release; snapshot: Snapshot }>;
  const p = readLiveSnapshot(store, source, now, opts.defaultBranch);
  opts.memo?.set(key, p);
  return p;
}

async function readLiveSnapshot(store: RunStore, source: SizedFlowSource, now: number, defaultBranch: string | undefined): Promise<{ release: Release; snapshot: Snapshot }> {
  const recorded = await getLiveRelease(store, source.repo, now);
  const ref = recorded?.ref ?? defaultBranch ?? (await source.defaultBranch());
  const sha = recorded?.sha ?? (await source.resolve(ref));
  const snapshot = await releaseSnapshotAt(source, sha);
  if (!snapshot.configValid) {
    const first = snapshot.configDiagnostics.find((d) => d.severity === "error");
    throw new SluiceError("CONFIG_INVALID", `${CONFIG_PATH} at ${sha.slice(0, 7)} is invalid${first ? `: line ${first.line}: ${first.message}` : ""}`, {
      diagnostics: snapshot.configDiagnostics,
    });
  }
  return { release: { sha, ref, kind: "live" }, snapshot };
}
