/** Durations of SPEC §2: `500ms 30s 10m 8h 7d`. */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION = /^([0-9]+)(ms|s|m|h|d)$/;

export function isDuration(text: string): boolean {
  return DURATION.test(text.trim());
}

/** Milliseconds of a duration string; throws on a malformed one (validation catches those first). */
export function parseDuration(text: string): number {
  const m = DURATION.exec(text.trim());
  if (!m || !m[1] || !m[2]) throw new Error(`invalid duration '${text}': use a number and a unit (500ms, 30s, 10m, 8h, 7d)`);
  return Number(m[1]) * (UNITS[m[2]] ?? 0);
}
