/**
 * Logging. `createLogger` is the CLI's small structured logger to stderr (static messages,
 * metadata as JSON, LOG_LEVEL gates it). The server logs through one pino logger shared with
 * Probot (`createServerLog`): JSON lines with LOG_FORMAT=json, Probot's pretty format with
 * LOG_FORMAT=pretty (the default outside NODE_ENV=production, as Probot does), on stderr, so
 * that `sluice serve --json` keeps stdout for its one JSON document.
 *
 * What names a secret in a request is scrubbed from every line, Probot's request log included:
 * a callback's token (`/callbacks/<token>`: the token is the credential), a signed link's `sig`,
 * bearer tokens and cookies. The runtime redacts its own lines of secret values already.
 */
import { getTransformStream } from "@probot/pino";
import { pino, type Logger as PinoLogger } from "pino";
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

export type LogFormat = "json" | "pretty";

/** LOG_FORMAT as Probot reads it: `pretty`, `json`, else json in production and pretty elsewhere. */
export function logFormatOf(env: NodeJS.ProcessEnv): LogFormat {
  if (env.LOG_FORMAT) return env.LOG_FORMAT === "pretty" ? "pretty" : "json";
  return env.NODE_ENV === "production" ? "json" : "pretty";
}

/**
 * Hides the credentials a request can carry in its URL or headers, in a formatted log line
 * (JSON or pretty): Probot's request log serializes the request after every pino hook, so the
 * line is where they are caught.
 */
export function scrubText(s: string): string {
  return s
    .replace(/(\/callbacks\/)[^\s/?#"]+/g, "$1[redacted]")
    .replace(/([?&]sig=)[^&\s#"]+/g, "$1[redacted]")
    .replace(/\b(Bearer|token)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 [redacted]")
    .replace(/("(?:authorization|cookie|set-cookie|x-sluice-signature-256|x-hub-signature-256|x-hub-signature)"\s*:\s*)"(?:[^"\\]|\\.)*"/gi, '$1"[redacted]"');
}

/**
 * The server's pino logger (Probot's and Sluice's). `write` receives each formatted line
 * (default: stderr).
 */
export async function createServerLog(opts: { level: string; format: LogFormat; write?: (line: string) => void }): Promise<PinoLogger> {
  const transform = await getTransformStream({ logFormat: opts.format, logLevelInString: opts.format === "json" });
  const write = opts.write ?? ((l: string) => void process.stderr.write(l));
  transform.on("data", (chunk: Buffer | string) => write(scrubText(chunk.toString())));
  return pino({ level: opts.level, name: "probot" }, transform);
}

/** Sluice's Logger over pino: static messages, metadata as the line's fields. */
export function fromPino(log: PinoLogger, bindings: Record<string, unknown> = { name: "sluice" }): Logger {
  const child = log.child(bindings);
  return {
    debug: (msg, meta) => child.debug(meta ?? {}, msg),
    info: (msg, meta) => child.info(meta ?? {}, msg),
    warn: (msg, meta) => child.warn(meta ?? {}, msg),
    error: (msg, meta) => child.error(meta ?? {}, msg),
  };
}
