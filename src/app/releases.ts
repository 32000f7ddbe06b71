/**
 * A release: the flows at a commit with the config of the default branch (SPEC §3: a branch
 * can never weaken policy or reach live connections).
 */
import type { Release } from "../core/engine/events.js";
import { SluiceError } from "../core/errors.js";
import type { Config, Diagnostic, Flow } from "../core/flow/types.js";
import { DEFAULT_CONFIG, validateConfig, validateFlow } from "../core/flow/validate.js";
import type { FlowSource } from "../ports/flow-source.js";

export interface LoadedRelease {
  release: Release;
  config: Config;
  flows: { path: string; flow?: Flow; diagnostics: Diagnostic[] }[];
}

export async function loadConfig(source: FlowSource, defaultBranch: string): Promise<Config> {
  const sha = await source.resolve(defaultBranch);
  const file = await source.configFile(sha);
  if (!file) return DEFAULT_CONFIG;
  const result = validateConfig(file.text, { file: file.path });
  if (!result.config) {
    const first = result.diagnostics.find((d) => d.severity === "error");
    throw new SluiceError(
      "CONFIG_INVALID",
      `${file.path} on ${defaultBranch} is invalid${first ? `: ${file.path}:${first.line}:${first.column}: ${first.message}` : ""}`,
      { diagnostics: result.diagnostics },
    );
  }
  return result.config;
}

export async function loadRelease(source: FlowSource, ref?: string): Promise<LoadedRelease> {
  const defaultBranch = await source.defaultBranch();
  const liveSha = await source.resolve(defaultBranch);
  const sha = ref ? await source.resolve(ref) : liveSha;
  const config = await loadConfig(source, defaultBranch);
  const files = await source.flowFiles(sha);
  const flows = files.map((f) => {
    const v = validateFlow(f.text, { file: f.path, config });
    return { path: f.path, ...(v.flow ? { flow: v.flow } : {}), diagnostics: v.diagnostics };
  });
  return {
    release: { sha, ref: ref ?? defaultBranch, kind: sha === liveSha ? "live" : "draft" },
    config,
    flows,
  };
}

/** Finds a flow by name (or file stem); FLOW_NOT_FOUND or FLOW_INVALID with its diagnostics. */
export function pickFlow(loaded: LoadedRelease, name: string): Flow {
  const stem = (p: string) => p.split("/").pop()?.replace(/\.ya?ml$/i, "");
  const hit = loaded.flows.find((f) => f.flow?.name === name) ?? loaded.flows.find((f) => stem(f.path) === name);
  if (!hit) {
    const known = loaded.flows.map((f) => f.flow?.name ?? stem(f.path)).join(", ") || "none";
    throw new SluiceError("FLOW_NOT_FOUND", `no flow '${name}' at ${loaded.release.ref} (${loaded.release.sha.slice(0, 7)}); flows there: ${known}`, { flow: name });
  }
  if (!hit.flow) {
    const first = hit.diagnostics.find((d) => d.severity === "error");
    throw new SluiceError(
      "FLOW_INVALID",
      `${hit.path} is invalid at ${loaded.release.sha.slice(0, 7)}${first ? `: ${hit.path}:${first.line}:${first.column}: ${first.code} ${first.message}` : ""}`,
      { diagnostics: hit.diagnostics },
    );
  }
  return hit.flow;
}
