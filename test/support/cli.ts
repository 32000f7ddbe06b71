/** Runs the built CLI (dist/, built by `npm test` before the suite) as a real process. */
import { spawn, spawnSync } from "node:child_process";
import { resolve } from "node:path";

export const CLI = resolve(import.meta.dirname, "../../dist/src/cli.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

export function sluice(cwd: string, args: string[], env: Record<string, string> = {}, input?: string): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, SLUICE_USER: "alice", LOG_LEVEL: "warn", ...env },
    encoding: "utf8",
    ...(input !== undefined ? { input } : {}),
  });
  let json: unknown;
  if (args.includes("--json")) {
    try {
      json = JSON.parse(r.stdout);
    } catch {
      json = undefined;
    }
  }
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr, json };
}

/** Same, without blocking the test's event loop (for tests that also serve HTTP). */
export function sluiceAsync(cwd: string, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, SLUICE_USER: "alice", LOG_LEVEL: "warn", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolvePromise({ code: code ?? -1, stdout, stderr, json });
    });
  });
}
