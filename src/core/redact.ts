/**
 * Redaction of secret values from everything that leaves the engine (SPEC §3). Pure: the
 * caller hands in the secret values it knows. A secret is also found in the forms it travels
 * in: base64 and base64url (at any byte alignment inside a longer encoding), URL-encoded, and
 * hex. The redactor runs on final values (an output, a gate's evidence, a comment's body), so a
 * secret reassembled from parts is found too.
 */
import { bytesToHex } from "@noble/hashes/utils.js";

export const REDACTED = "***";

/** Secrets shorter than this are not redacted: they would shred ordinary text. */
const MIN_SECRET_LENGTH = 4;
/** An encoded form shorter than this (an edge of a short secret's base64, say) is not looked for. */
const MIN_FORM_LENGTH = 6;

export type Redactor = <T>(value: T) => T;

const utf8 = new TextEncoder();

/** Standard base64 (the platform's `btoa` over a binary string: no I/O, so the core stays pure). */
const toBase64 = (b: Uint8Array): string => btoa(String.fromCharCode(...b));
const toBase64Url = (b: Uint8Array): string => toBase64(b).replace(/\+/g, "-").replace(/\//g, "_");

/**
 * The base64 characters a secret's bytes alone decide, at each of the three alignments it may
 * have inside a longer base64 text: the characters at the edges, which mix in neighbouring bytes,
 * are left out.
 */
function base64Forms(bytes: Uint8Array, encode: (b: Uint8Array) => string): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const padded = new Uint8Array(offset + bytes.length);
    padded.set(bytes, offset);
    const text = encode(padded).replace(/=+$/, "");
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    out.push(text.slice(first, end));
  }
  return out;
}

/** The forms a secret may take in text, itself first. */
export function secretForms(secret: string): string[] {
  const bytes = utf8.encode(secret);
  const forms = [
    secret,
    ...base64Forms(bytes, toBase64),
    ...base64Forms(bytes, toBase64Url),
    encodeURIComponent(secret),
    encodeURIComponent(secret).replace(/%20/g, "+"),
    bytesToHex(bytes),
    bytesToHex(bytes).toUpperCase(),
  ];
  return [...new Set(forms)].filter((f, i) => i === 0 || f.length >= MIN_FORM_LENGTH);
}

export function createRedactor(secrets: Iterable<string>): Redactor {
  const values = [...new Set([...secrets].filter((s) => s.length >= MIN_SECRET_LENGTH).flatMap(secretForms))].sort((a, b) => b.length - a.length);
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
      for (const [k, v] of Object.entries(value)) out[redactString(k)] = walk(v);
      return out;
    }
    return value;
  };
  return <T>(value: T): T => walk(value) as T;
}
