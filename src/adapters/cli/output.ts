/**
 * How a command's report leaves the process: one JSON envelope with `--json` (SPEC §6), text
 * for people otherwise, and the exit code the report names.
 */
import { SluiceError, type ErrorCode } from "../../core/errors.js";

export const API_VERSION = "sluice/v1";

export const EXIT = { ok: 0, failed: 1, usage: 2, waiting: 3, notFound: 4, infra: 5 } as const;

export interface Report {
  kind: string;
  ok: boolean;
  data: unknown;
  error?: { code: string; message: string; details: Record<string, unknown> };
  exitCode: number;
  /** What a person reads. */
  human: string;
  /** The human text is one error line (coloured red on a terminal). */
  errorLine?: boolean;
}

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Standard error is a terminal: live progress goes there. */
  isTTY: boolean;
  /** Colour the text output (a terminal, or FORCE_COLOR; never with NO_COLOR): see `useColour`. */
  colour?: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdin?: () => Promise<string>;
}

export function envelope(r: Pick<Report, "kind" | "ok" | "data" | "error">): string {
  return JSON.stringify({ apiVersion: API_VERSION, kind: r.kind, ok: r.ok, data: r.data ?? null, error: r.error ?? null });
}

/**
 * Whether to colour: NO_COLOR (any non-empty value) never, FORCE_COLOR (but 0 or false) always,
 * else when the output is a terminal (https://no-color.org, https://force-color.org).
 */
export function useColour(env: NodeJS.ProcessEnv, isTTY: boolean): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined) return env.FORCE_COLOR !== "0" && env.FORCE_COLOR !== "false";
  return isTTY && env.TERM !== "dumb";
}

export function exitCodeFor(code: ErrorCode | string): number {
  // Bad inputs are the caller's mistake, like a bad flag: nothing ran.
  if (code === "USAGE" || code === "NOT_A_REPOSITORY" || code === "INPUT_INVALID") return EXIT.usage;
  if (code.endsWith("NOT_FOUND")) return EXIT.notFound;
  if (code === "STORE_ERROR" || code === "INTERNAL" || code === "CONNECTION_FAILED") return EXIT.infra;
  return EXIT.failed;
}

/** A failure with no data: kind Error (schemas/cli/error.schema.json). */
export function errorReport(e: unknown): Report {
  const err =
    e instanceof SluiceError
      ? { code: e.code, message: e.message, details: e.details }
      : { code: "INTERNAL", message: e instanceof Error ? e.message : String(e), details: {} };
  return { kind: "Error", ok: false, data: null, error: err, exitCode: exitCodeFor(err.code), human: `error ${err.code}: ${err.message}`, errorLine: true };
}

export function print(report: Report, io: Io, json: boolean): number {
  if (json) io.stdout(envelope(report) + "\n");
  else if (report.human) {
    // A report with data (diagnostics, a failed run) is the answer: stdout. A bare error: stderr.
    const human = report.errorLine && io.colour ? paint(true).red(report.human) : report.human;
    const text = human.endsWith("\n") ? human : human + "\n";
    if (report.ok || report.data !== null) io.stdout(text);
    else io.stderr(text);
  }
  return report.exitCode;
}

export function usage(message: string): SluiceError {
  return new SluiceError("USAGE", message);
}

const ANSI = /\x1b\[[0-9;]*m/g;

/** How wide a cell shows: colour codes take no room. */
export function visibleLength(s: string): number {
  return s.replace(ANSI, "").length;
}

/** A plain text table: columns padded to the widest cell (cells may be coloured). */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(c))));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + " ".repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(c))))).join("  ")).join("\n");
}

export type Paint = Record<"bold" | "dim" | "red" | "green" | "yellow" | "blue" | "cyan" | "magenta", (s: string) => string>;

/** ANSI styles, or identity functions when colour is off. */
export function paint(on: boolean | undefined): Paint {
  const sgr = (open: number, close: number) => (s: string) => (on && s ? `\x1b[${open}m${s}\x1b[${close}m` : s);
  return { bold: sgr(1, 22), dim: sgr(2, 22), red: sgr(31, 39), green: sgr(32, 39), yellow: sgr(33, 39), blue: sgr(34, 39), magenta: sgr(35, 39), cyan: sgr(36, 39) };
}
