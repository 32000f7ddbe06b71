/**
 * Redaction of secret values from everything that leaves the engine (SPEC §3). Pure: the
 * caller hands in the secret values it knows.
 */
export const REDACTED = "***";

/** Secrets shorter than this are not redacted: they would shred ordinary text. */
const MIN_SECRET_LENGTH = 4;

export type Redactor = <T>(value: T) => T;

export function createRedactor(secrets: Iterable<string>): Redactor {
  const values = [...new Set([...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH))].sort(
    (a, b) => b.length - a.length,
  );
  if (values.length === 0) return (value) => value;
  const redactString = (s: string): string => {
    let out = s;
    for (const v of values) if (out.includes(v)) out = out.split(v).join(REDACTED);
    return out;
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === "string") return redactString(value);
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v);
      return out;
    }
    return value;
  };
  return <T>(value: T): T => walk(value) as T;
}
