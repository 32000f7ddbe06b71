/**
 * Diagnostics as check-run annotations, and the limits GitHub puts on a check run: 50
 * annotations a request, 65,535 characters a summary. Pure.
 */
import type { Diagnostic } from "../../core/flow/types.js";

export const ANNOTATIONS_PER_REQUEST = 50;
export const MAX_SUMMARY_CHARS = 65_535;

export interface Annotation {
  path: string;
  start_line: number;
  end_line: number;
  start_column?: number;
  end_column?: number;
  annotation_level: "notice" | "warning" | "failure";
  message: string;
  title: string;
}

/** One annotation per diagnostic, on its file and YAML line (line 1 when the position is unknown). */
export function toAnnotations(diagnostics: readonly Diagnostic[], fallbackPath: string): Annotation[] {
  return diagnostics.map((d) => {
    const line = d.line > 0 ? d.line : 1;
    return {
      path: d.file ?? fallbackPath,
      start_line: line,
      end_line: line,
      ...(d.line > 0 && d.column > 0 ? { start_column: d.column, end_column: d.column } : {}),
      annotation_level: d.severity === "error" ? "failure" : "warning",
      message: d.message,
      title: `${d.code}${d.pointer ? ` at ${d.pointer}` : ""}`,
    };
  });
}

/** Splits a list into chunks of `size` (annotations are sent 50 at a time). */
export function chunk<T>(items: readonly T[], size = ANNOTATIONS_PER_REQUEST): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Cuts Markdown to GitHub's summary limit, saying so at the end. */
export function fitSummary(markdown: string, max = MAX_SUMMARY_CHARS): string {
  if (markdown.length <= max) return markdown;
  const note = "\n\n_… cut to fit GitHub's limit on a check run's summary._";
  return markdown.slice(0, max - note.length) + note;
}

/** Escapes text for a Markdown table cell. */
export function cell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
}
