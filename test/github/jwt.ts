/**
 * GitHub App JSON web tokens as GitHub checks them: RS256, signed with the app's private key,
 * `iss` the app id, `exp` in the future and at most ten minutes after `iat`.
 */
import { createPublicKey, generateKeyPairSync, verify as verifySignature, type KeyObject } from "node:crypto";

export interface AppKeyPair {
  /** PKCS#1 PEM, the format GitHub hands out and Probot's PRIVATE_KEY takes. */
  privateKey: string;
  publicKey: string;
}

/** A fresh RSA key pair for a simulated GitHub App. */
export function generateAppKeyPair(): AppKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs1", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  });
  return { privateKey, publicKey };
}

export function toPublicKey(key: string | KeyObject): KeyObject {
  return typeof key === "string" ? createPublicKey(key) : key;
}

export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

export type JwtCheck = { ok: true; appId: string } | { ok: false; message: string };

function decodePart(part: string): any {
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
}

/** Checks a JWT against the public keys of the registered apps. */
export function verifyAppJwt(token: string, keys: Map<string, KeyObject>, nowMs = Date.now()): JwtCheck {
  const [h, p, s] = token.split(".");
  if (h === undefined || p === undefined || s === undefined) return { ok: false, message: "A JSON web token could not be decoded" };
  let header: any;
  let payload: any;
  try {
    header = decodePart(h);
    payload = decodePart(p);
  } catch {
    return { ok: false, message: "A JSON web token could not be decoded" };
  }
  if (header?.alg !== "RS256") return { ok: false, message: "'alg' must be RS256" };
  const iss = payload?.iss === undefined ? undefined : String(payload.iss);
  if (!iss) return { ok: false, message: "'Issuer' claim ('iss') must be an Integer" };
  const key = keys.get(iss);
  if (!key) return { ok: false, message: `Integration not found` };
  const good = verifySignature("RSA-SHA256", Buffer.from(`${h}.${p}`), key, Buffer.from(s, "base64url"));
  if (!good) return { ok: false, message: "A JSON web token could not be decoded" };
  const now = Math.floor(nowMs / 1000);
  if (typeof payload.exp !== "number" || typeof payload.iat !== "number") {
    return { ok: false, message: "'Expiration time' claim ('exp') and 'Issued at' claim ('iat') must be numbers" };
  }
  if (payload.exp <= now) {
    return { ok: false, message: "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires" };
  }
  if (payload.iat > now + 60) return { ok: false, message: "'Issued at' claim ('iat') must be an Integer representing a time in the past" };
  if (payload.exp - payload.iat > 600) return { ok: false, message: "'Expiration time' claim ('exp') is too far in the future" };
  return { ok: true, appId: iss };
}
