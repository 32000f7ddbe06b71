/** A small structured logger to stderr: static messages, metadata as JSON (LOG_LEVEL gates it). */
import type { Logger } from "../ports/step-executor.js";

const LEVELS = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, fatal: 5, silent: 6 } as const;
type Level = keyof typeof LEVELS;

export function createLogger(level: string | undefined, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const min = LEVELS[(level ?? "warn") as Level] ?? LEVELS.warn;
  const log = (lvl: Level) => (msg: string, meta?: Record<string, unknown>) => {
    if (LEVELS[lvl] < min) return;
    write(`${new Date().toISOString()} ${lvl.toUpperCase()} ${msg}${meta && Object.keys(meta).length ? " " + JSON.stringify(meta) : ""}\n`);
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}
