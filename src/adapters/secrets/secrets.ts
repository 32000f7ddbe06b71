/**
 * Secrets on the server: `SLUICE_SECRET_<NAME>` environment variables first, then the file
 * written by `sluice secrets set NAME`, encrypted with AES-256-GCM under a key derived from
 * `SLUICE_MASTER_KEY` (scrypt). The file holds no value in clear.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { SluiceError } from "../../core/errors.js";
import type { Secrets } from "../../ports/secrets.js";

const ENV_PREFIX = "SLUICE_SECRET_";
const NAME = /^[A-Z][A-Z0-9_]*$/;

interface SealedFile {
  version: 1;
  salt: string;
  secrets: Record<string, { iv: string; tag: string; data: string }>;
}

export class SecretStore implements Secrets {
  constructor(
    private readonly file: string,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  private read(): SealedFile {
    if (!existsSync(this.file)) return { version: 1, salt: randomBytes(16).toString("base64"), secrets: {} };
    return JSON.parse(readFileSync(this.file, "utf8")) as SealedFile;
  }

  private derived?: { salt: string; key: Buffer };

  /** scrypt is slow on purpose: derive the key once per salt. */
  private key(salt: string): Buffer {
    const master = this.env.SLUICE_MASTER_KEY;
    if (!master) throw new SluiceError("SECRET_MISSING", "SLUICE_MASTER_KEY is not set: it encrypts the secrets kept by 'sluice secrets set'");
    if (this.derived?.salt !== salt) this.derived = { salt, key: scryptSync(master, Buffer.from(salt, "base64"), 32) };
    return this.derived.key;
  }

  get(name: string): string | undefined {
    const fromEnv = this.env[`${ENV_PREFIX}${name}`];
    if (fromEnv !== undefined) return fromEnv;
    const sealed = this.read();
    const entry = sealed.secrets[name];
    if (!entry) return undefined;
    const decipher = createDecipheriv("aes-256-gcm", this.key(sealed.salt), Buffer.from(entry.iv, "base64"));
    decipher.setAuthTag(Buffer.from(entry.tag, "base64"));
    try {
      return Buffer.concat([decipher.update(Buffer.from(entry.data, "base64")), decipher.final()]).toString("utf8");
    } catch {
      throw new SluiceError("SECRET_MISSING", `secret ${name} cannot be decrypted: SLUICE_MASTER_KEY is not the key it was stored with`);
    }
  }

  set(name: string, value: string): void {
    if (!NAME.test(name)) throw new SluiceError("USAGE", `a secret name is upper case letters, digits and _ (got '${name}')`);
    const sealed = this.read();
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key(sealed.salt), iv);
    const data = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
    sealed.secrets[name] = { iv: iv.toString("base64"), tag: cipher.getAuthTag().toString("base64"), data: data.toString("base64") };
    mkdirSync(dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(sealed, null, 2), { mode: 0o600 });
    renameSync(tmp, this.file);
  }

  /** Names only, never values, with where each comes from. */
  list(): { name: string; source: "env" | "file" }[] {
    const names = new Map<string, "env" | "file">();
    for (const name of Object.keys(this.read().secrets)) names.set(name, "file");
    for (const k of Object.keys(this.env)) if (k.startsWith(ENV_PREFIX)) names.set(k.slice(ENV_PREFIX.length), "env");
    return [...names].sort().map(([name, source]) => ({ name, source }));
  }

  values(): string[] {
    const out: string[] = [];
    for (const { name } of this.list()) {
      try {
        const v = this.get(name);
        if (v !== undefined) out.push(v);
      } catch {
        // a secret that cannot be decrypted cannot leak either
      }
    }
    return out;
  }
}
