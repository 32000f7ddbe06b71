/** `sluice validate [path…]`: flows and config, with diagnostics that say what and where. */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import type { Diagnostic } from "../../core/flow/types.js";
import { coverOf, describeCover } from "../../core/engine/coverage.js";
import { DEFAULT_CONFIG, validateConfig, validateFlow, type ConfigValidation } from "../../core/flow/validate.js";
import type { Config, Flow } from "../../core/flow/types.js";
import { CONFIG_PATH, FLOWS_DIR } from "../../ports/flow-source.js";
import { EXIT, usage, type Io, type Report } from "./output.js";

export interface FileReport {
  file: string;
  kind: "flow" | "config";
  valid: boolean;
  diagnostics: Diagnostic[];
  /** A valid flow's write steps and what covers each (SPEC §4). */
  writes?: WriteCover[];
}

export interface WriteCover {
  step: string;
  /** `approval`: the approval steps in `by` cover it (else its own gate); `implicit`: its own gate; `auto`: never gated. */
  gate: "approval" | "implicit" | "auto";
  by?: string[];
  text: string;
}

/** Each write step of a flow with what covers it, under the config (its effect as far as it is known before running). */
export function writeCovers(flow: Flow, config: Config): WriteCover[] {
  return flow.steps.flatMap((step, i) => {
    const cover = coverOf(flow, i, config);
    if (cover.kind === "none") return [];
    return [{ step: step.id, gate: cover.kind, ...(cover.kind === "approval" ? { by: cover.by } : {}), text: describeCover(cover) }];
  });
}

const isYaml = (p: string) => /\.ya?ml$/i.test(p);
const isConfigFile = (p: string) => basename(p) === "sluice.yml" || basename(p) === "sluice.yaml" || /\.sluice\.ya?ml$/.test(p);

function expand(paths: string[], cwd: string): string[] {
  const out: string[] = [];
  for (const p of paths) {
    const abs = resolve(cwd, p);
    if (!existsSync(abs)) throw usage(`no such file or folder: ${p}`);
    if (statSync(abs).isDirectory()) {
      const walk = (dir: string) => {
        for (const name of readdirSync(dir).sort()) {
          const full = join(dir, name);
          if (statSync(full).isDirectory()) {
            if (name !== "node_modules" && (!name.startsWith(".") || name === ".github")) walk(full);
          } else if (isYaml(full)) out.push(full);
        }
      };
      walk(abs);
    } else out.push(abs);
  }
  return out;
}

/** Finds the repository root above cwd (the folder holding .git), or cwd. */
export function repoRoot(cwd: string): string {
  let dir = resolve(cwd);
  while (true) {
    if (existsSync(join(dir, ".git"))) return dir;
    const parent = resolve(dir, "..");
    if (parent === dir) return resolve(cwd);
    dir = parent;
  }
}

/** The config flows were checked against: a file (as displayed) or the default. */
export interface ConfigUsed {
  file: string | null;
  text: string;
}

export function validatePaths(paths: string[], io: Io): { files: FileReport[]; sources: Map<string, string>; config: ConfigUsed } {
  const root = repoRoot(io.cwd);
  let targets: string[];
  if (paths.length === 0) {
    targets = [];
    if (existsSync(join(root, CONFIG_PATH))) targets.push(join(root, CONFIG_PATH));
    if (existsSync(join(root, FLOWS_DIR))) targets.push(...expand([join(root, FLOWS_DIR)], io.cwd));
    if (targets.length === 0) throw usage(`nothing to validate: no ${FLOWS_DIR}/ or ${CONFIG_PATH} in ${root}`);
  } else targets = expand(paths, io.cwd);

  const sources = new Map<string, string>();
  const display = (abs: string) => relative(io.cwd, abs) || abs;
  // The config first: flows are checked against it (connections, deny rules).
  const configs = targets.filter(isConfigFile);
  const flows = targets.filter((t) => !isConfigFile(t));
  const files: FileReport[] = [];
  let config: Config | undefined;
  let used: ConfigUsed = { file: null, text: `the default config (no ${CONFIG_PATH})` };
  for (const abs of configs) {
    const text = readFileSync(abs, "utf8");
    sources.set(display(abs), text);
    const v: ConfigValidation = validateConfig(text, { file: display(abs) });
    if (v.config && !config) {
      config = v.config;
      used = { file: display(abs), text: display(abs) };
    }
    files.push({ file: display(abs), kind: "config", valid: !v.diagnostics.some((d) => d.severity === "error"), diagnostics: v.diagnostics });
  }
  // Single flows named without a config (a pre-commit hook, an editor) are checked against the
  // repository's own config, as the whole repository would be.
  const repoConfig = join(root, CONFIG_PATH);
  if (configs.length === 0 && flows.length > 0 && existsSync(repoConfig)) {
    const v = validateConfig(readFileSync(repoConfig, "utf8"), { file: display(repoConfig) });
    if (v.config) {
      config = v.config;
      used = { file: display(repoConfig), text: `${display(repoConfig)} (the repository's config)` };
    } else used = { file: null, text: `the default config: ${display(repoConfig)} has errors (sluice validate ${display(repoConfig)})` };
  } else if (configs.length > 0 && !config) used = { file: null, text: "the default config: the config named has errors" };
  const names = new Map<string, string>();
  for (const abs of flows) {
    const text = readFileSync(abs, "utf8");
    const file = display(abs);
    sources.set(file, text);
    const v = validateFlow(text, { file, ...(config ? { config } : {}), ...(used?.file ? { configFile: used.file } : {}) });
    const diagnostics = [...v.diagnostics];
    if (v.flow) {
      const other = names.get(v.flow.name);
      if (other) {
        diagnostics.push({ severity: "error", code: "FLOW_NAME_DUPLICATE", message: `flow name '${v.flow.name}' is also used by ${other}`, file, line: 1, column: 1, pointer: "/name" });
      } else names.set(v.flow.name, file);
    }
    const valid = !diagnostics.some((d) => d.severity === "error");
    files.push({ file, kind: "flow", valid, diagnostics, ...(v.flow && valid ? { writes: writeCovers(v.flow, config ?? DEFAULT_CONFIG) } : {}) });
  }
  return { files, sources, config: used };
}

/** `file:line:col: error CODE message`, the offending line below it, and a caret. */
export function formatDiagnostic(d: Diagnostic, source: string | undefined): string {
  const head = `${d.file ?? "<input>"}:${d.line}:${d.column}: ${d.severity} ${d.code} ${d.message}`;
  // A line of a minified or oversized file can be megabytes long: show its start only.
  const line = source?.split("\n", d.line)[d.line - 1]?.slice(0, 200);
  if (line === undefined || d.line < 1) return head;
  return `${head}\n  ${d.line} | ${line}\n  ${" ".repeat(String(d.line).length)} | ${" ".repeat(Math.max(0, d.column - 1))}^`;
}

export function validateCommand(paths: string[], io: Io): Report {
  const { files, sources, config } = validatePaths(paths, io);
  const all = files.flatMap((f) => f.diagnostics);
  const errors = all.filter((d) => d.severity === "error").length;
  const warnings = all.length - errors;
  const lines = files.flatMap((f) => f.diagnostics.map((d) => formatDiagnostic(d, sources.get(f.file))));
  for (const f of files) {
    if (f.writes?.length) lines.push(`${f.file}: writes: ${f.writes.map((w) => `${w.step} (${w.text})`).join("; ")}`);
  }
  if (files.some((f) => f.kind === "flow")) lines.push(`flows checked against ${config.text}`);
  lines.push(`${files.length} file${files.length === 1 ? "" : "s"} checked: ${errors} error${errors === 1 ? "" : "s"}, ${warnings} warning${warnings === 1 ? "" : "s"}`);
  const data = { valid: errors === 0, errors, warnings, files, config };
  return {
    kind: "ValidationReport",
    ok: errors === 0,
    data,
    ...(errors ? { error: { code: "FLOW_INVALID", message: `${errors} error${errors === 1 ? "" : "s"} in ${files.filter((f) => !f.valid).length} file(s)`, details: {} } } : {}),
    exitCode: errors ? EXIT.failed : EXIT.ok,
    human: lines.join("\n"),
  };
}
