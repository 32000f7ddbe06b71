/** Timing and statistics for the benchmarks: medians, percentiles, and figures printed for people. */
import { setTimeout as sleep } from "node:timers/promises";

export { sleep };

/** The value at quantile `q` (0..1) of `values`, by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);

/** Milliseconds `fn` takes, by the monotonic clock. */
export async function timed<T>(fn: () => Promise<T> | T): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

/** Mean milliseconds per call of `fn` over `n` calls, after `warmup` calls. */
export async function perCall(n: number, fn: (i: number) => Promise<unknown> | unknown, warmup = Math.ceil(n / 10)): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn(i);
  const t = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return (performance.now() - t) / n;
}

/** Polls `fn` until it returns something other than undefined/false; throws after `limitMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, limitMs: number, everyMs = 50): Promise<T> {
  const end = Date.now() + limitMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`gave up after ${Math.round(limitMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Runs `tasks` with at most `width` in flight. */
export async function pool<T>(width: number, items: readonly T[], task: (item: T, index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await task(items[i]!, i);
      }
    }),
  );
}

/** A duration for people: µs under a millisecond, ms under ten seconds, else seconds. */
export function ms(v: number): string {
  if (!Number.isFinite(v)) return "–";
  if (v < 1) return `${(v * 1000).toFixed(v < 0.01 ? 2 : 0)} µs`;
  if (v < 10) return `${v.toFixed(2)} ms`;
  if (v < 10_000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(1)} s`;
}

/** A ratio such as `12.3x`. */
export function times(v: number): string {
  if (!Number.isFinite(v)) return "–";
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)}x`;
}

/** A whole number with thousands separated. */
export function count(v: number): string {
  return Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "–";
}

export function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** A Markdown table; the first row is the header, columns after the first are right-aligned. */
export function table(rows: readonly (readonly string[])[]): string {
  const [head, ...body] = rows;
  if (!head) return "";
  const line = (r: readonly string[]) => `| ${r.join(" | ")} |`;
  return [line(head), `|${head.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`, ...body.map(line)].join("\n");
}
