/**
 * Resources on disk, content-addressed: `<dir>/sha256/<2 hex>/<62 hex>` holds the bytes and a
 * sidecar `<same>.json` their media type. Refs are `res://sha256/<64 hex>`. Writes go to a temp
 * file then rename, so a reader never sees half a resource; the same content put twice is one
 * file (the first media type stays: a ref names bytes, not a label).
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { SluiceError } from "../../core/errors.js";
import type { ResourceRef, ResourceStore } from "../../ports/resource-store.js";

const REF = /^res:\/\/sha256\/([0-9a-f]{64})$/;
const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(\s*;\s*[a-z0-9!#$&^_.+-]+=("[^"\\]*"|[a-z0-9!#$&^_.+-]+))*$/i;
const FALLBACK_MEDIA_TYPE = "application/octet-stream";

/** The hex digest of a `res://sha256/<hex>` ref; throws RESOURCE_REF_INVALID for anything else. */
export function parseResourceRef(ref: string): string {
  const m = typeof ref === "string" ? REF.exec(ref) : null;
  if (!m?.[1]) {
    throw new SluiceError("RESOURCE_REF_INVALID", `not a resource ref: ${JSON.stringify(ref)} (expected res://sha256/<64 lowercase hex digits>)`, {
      ref,
    });
  }
  return m[1];
}

export function resourceRefOf(hex: string): string {
  return `res://sha256/${hex}`;
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

export class FileResourceStore implements ResourceStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  private pathOf(hex: string): string {
    return join(this.dir, "sha256", hex.slice(0, 2), hex.slice(2));
  }

  private async writeAtomic(path: string, data: Uint8Array | string): Promise<void> {
    const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
    try {
      await writeFile(tmp, data, { flush: true });
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  private async readMediaType(path: string): Promise<string | undefined> {
    try {
      const meta = JSON.parse(await readFile(`${path}.json`, "utf8")) as { media_type?: unknown };
      return typeof meta.media_type === "string" ? meta.media_type : undefined;
    } catch (err) {
      if (isMissing(err) || err instanceof SyntaxError) return undefined;
      throw err;
    }
  }

  async put(data: Uint8Array, mediaType: string): Promise<ResourceRef> {
    if (!(data instanceof Uint8Array)) throw new SluiceError("INPUT_INVALID", "a resource's data must be bytes (Uint8Array)");
    if (typeof mediaType !== "string" || !MEDIA_TYPE.test(mediaType)) {
      throw new SluiceError("INPUT_INVALID", `not a media type: ${JSON.stringify(mediaType)} (expected type/subtype, e.g. application/json)`);
    }
    const hex = createHash("sha256").update(data).digest("hex");
    const path = this.pathOf(hex);
    try {
      await mkdir(join(this.dir, "sha256", hex.slice(0, 2)), { recursive: true });
      // The sidecar first: a crash between the two writes leaves a label without bytes (reads as
      // unknown), never bytes without their label.
      let stored = await this.readMediaType(path);
      if (stored === undefined) {
        await this.writeAtomic(`${path}.json`, `${JSON.stringify({ media_type: mediaType })}\n`);
        stored = mediaType;
      }
      const existing = await stat(path).catch((err: unknown) => {
        if (isMissing(err)) return undefined;
        throw err;
      });
      if (!existing || existing.size !== data.byteLength) await this.writeAtomic(path, data);
      // Stored again: retention counts a resource's age from its last store (storedBefore).
      else await utimes(path, new Date(), new Date());
      return { $resource: resourceRefOf(hex), size: data.byteLength, media_type: stored };
    } catch (err) {
      if (err instanceof SluiceError) throw err;
      throw new SluiceError("STORE_ERROR", `could not store a resource under ${this.dir}: ${(err as Error).message}`);
    }
  }

  /** The resources (hex digests) last stored before `before` (epoch ms): retention's candidates. */
  async storedBefore(before: number): Promise<string[]> {
    const root = join(this.dir, "sha256");
    const out: string[] = [];
    for (const prefix of await readdir(root).catch(() => [] as string[])) {
      if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
      for (const name of await readdir(join(root, prefix)).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{62}$/.test(name)) continue;
        const st = await stat(join(root, prefix, name)).catch(() => undefined);
        if (st && st.mtimeMs < before) out.push(prefix + name);
      }
    }
    return out;
  }

  /**
   * Deletes a resource (its bytes, then its label) unless it was stored again since `before`;
   * true when it was deleted.
   */
  async deleteStoredBefore(hex: string, before: number): Promise<boolean> {
    const path = this.pathOf(parseResourceRef(resourceRefOf(hex)));
    const st = await stat(path).catch(() => undefined);
    if (!st || st.mtimeMs >= before) return false;
    await rm(path, { force: true });
    await rm(`${path}.json`, { force: true });
    return true;
  }

  async get(ref: string): Promise<{ data: Uint8Array; mediaType: string } | undefined> {
    const hex = parseResourceRef(ref);
    const path = this.pathOf(hex);
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw new SluiceError("STORE_ERROR", `could not read resource ${ref}: ${(err as Error).message}`, { ref });
    }
    const actual = createHash("sha256").update(data).digest("hex");
    if (actual !== hex) {
      throw new SluiceError("STORE_ERROR", `resource ${ref} is corrupt on disk (its content hashes to ${actual})`, { ref });
    }
    const mediaType = (await this.readMediaType(path)) ?? FALLBACK_MEDIA_TYPE;
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), mediaType };
  }
}
