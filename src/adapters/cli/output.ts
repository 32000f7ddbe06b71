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
}

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  cwd: string;
  stdin?: () => Promise<string>;
}

export function envelope(r: Pick<Report, "kind" | "ok" | "data" | "error">): string {
  return JSON.stringify({ apiVersion: API_VERSION, kind: r.kind, ok: r.ok, data: r.data ?? null, error: r.error ?? null });
}

export function exitCodeFor(code: ErrorCode | string): number {
  if (code === "USAGE" || code === "NOT_A_REPOSITORY") return EXIT.usage;
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
  return { kind: "Error", ok: false, data: null, error: err, exitCode: exitCodeFor(err.code), human: `error ${err.code}: ${err.message}` };
}

export function print(report: Report, io: Io, json: boolean): number {
  if (json) io.stdout(envelope(report) + "\n");
  else if (report.human) {
    // A report with data (diagnostics, a failed run) is the answer: stdout. A bare error: stderr.
    const text = report.human.endsWith("\n") ? report.human : report.human + "\n";
    if (report.ok || report.data !== null) io.stdout(text);
    else io.stderr(text);
  }
  return report.exitCode;
}

export function usage(message: string): SluiceError {
  return new SluiceError("USAGE", message);
}

/** A plain text table: columns padded to the widest cell. */
export function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join("  ")).join("\n");
}
