/**
 * A release: the flows at a commit with the config of the default branch (SPEC §3: a branch
 * can never weaken policy or reach live connections).
 */
import type { Release } from "../core/engine/events.js";
import { SluiceError } from "../core/errors.js";
import type { Config, Diagnostic, Flow } from "../core/flow/types.js";
import { DEFAULT_CONFIG, validateConfig, validateFlow } from "../core/flow/validate.js";
import { FLOWS_DIR, type FlowSource } from "../ports/flow-source.js";

export interface LoadedRelease {
  release: Release;
  config: Config;
  flows: { path: string; flow?: Flow; diagnostics: Diagnostic[] }[];
}

/** The default branch's config, at `sha`, the branch's head. */
export async function loadConfig(source: FlowSource, defaultBranch: string, sha: string): Promise<Config> {
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

/** The release a ref names: the default branch's head unless `ref` names another commit. */
async function releaseAt(source: FlowSource, ref: string | undefined): Promise<{ release: Release; defaultBranch: string; liveSha: string }> {
  const defaultBranch = await source.defaultBranch();
  const [liveSha, refSha] = await Promise.all([source.resolve(defaultBranch), ref ? source.resolve(ref) : undefined]);
  const sha = refSha ?? liveSha;
  return { release: { sha, ref: ref ?? defaultBranch, kind: sha === liveSha ? "live" : "draft" }, defaultBranch, liveSha };
}

function validated(file: { path: string; text: string }, config: Config): LoadedRelease["flows"][number] {
  const v = validateFlow(file.text, { file: file.path, config });
  return { path: file.path, ...(v.flow ? { flow: v.flow } : {}), diagnostics: v.diagnostics };
}

export async function loadRelease(source: FlowSource, ref?: string): Promise<LoadedRelease> {
  const { release, defaultBranch, liveSha } = await releaseAt(source, ref);
  const [config, files] = await Promise.all([loadConfig(source, defaultBranch, liveSha), source.flowFiles(release.sha)]);
  return { release, config, flows: files.map((f) => validated(f, config)) };
}

/**
 * The release that holds one flow, parsing only that flow and the config: the file named after
 * the flow (`<name>.yml` or `.yaml`) when its own name is that, else every flow at the commit
 * (a flow whose `name:` differs from its file's stem), as `loadRelease` does.
 */
export async function loadFlow(source: FlowSource, name: string, ref?: string): Promise<{ release: Release; config: Config; flow: Flow }> {
  const { release, defaultBranch, liveSha } = await releaseAt(source, ref);
  const named = /^[A-Za-z0-9._-]+$/.test(name) ? [`${FLOWS_DIR}/${name}.yml`, `${FLOWS_DIR}/${name}.yaml`] : [];
  const [config, ...texts] = await Promise.all([loadConfig(source, defaultBranch, liveSha), ...named.map((path) => source.readFile(release.sha, path))]);
  const at = texts.findIndex((t) => t !== undefined);
  if (at >= 0) {
    const entry = validated({ path: named[at]!, text: texts[at]! }, config);
    // An invalid file, or one whose name is its stem, is the answer; one named otherwise leaves the name to another file.
    if (!entry.flow || entry.flow.name === name) return { release, config, flow: pickFlow({ release, config, flows: [entry] }, name) };
  }
  return { release, config, flow: pickFlow(await loadRelease(source, ref), name) };
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
