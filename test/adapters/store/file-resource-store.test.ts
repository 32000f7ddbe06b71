import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FileResourceStore, parseResourceRef } from "../../../src/adapters/store/file-resource-store.js";
import { SluiceError } from "../../../src/core/errors.js";

const root = mkdtempSync(join(tmpdir(), "sluice-res-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function fresh(name: string): FileResourceStore {
  return new FileResourceStore(join(root, name));
}

function sha(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(join(entry.parentPath, entry.name).slice(dir.length + 1));
  }
  return out.sort();
}

describe("FileResourceStore", () => {
  it("stores bytes under their sha256 and gives them back with their media type", async () => {
    const store = fresh("basic");
    const data = new TextEncoder().encode(JSON.stringify({ rows: Array.from({ length: 5000 }, (_, i) => ({ i, s: "x".repeat(10) })) }));
    const hex = sha(data);
    const ref = await store.put(data, "application/json");
    expect(ref).toEqual({ $resource: `res://sha256/${hex}`, size: data.byteLength, media_type: "application/json" });
    const back = await store.get(ref.$resource);
    expect(back?.mediaType).toBe("application/json");
    expect(Buffer.from(back!.data).equals(Buffer.from(data))).toBe(true);
    expect(readFileSync(join(root, "basic", "sha256", hex.slice(0, 2), hex.slice(2))).equals(Buffer.from(data))).toBe(true);
  });

  it("keeps one file when the same content is put twice, and no temp files", async () => {
    const store = fresh("dedupe");
    const data = new Uint8Array(200_000).map((_, i) => i % 251);
    const first = await store.put(data, "application/octet-stream");
    const path = join(root, "dedupe", "sha256", sha(data).slice(0, 2), sha(data).slice(2));
    const before = statSync(path);
    const second = await store.put(new Uint8Array(data), "text/plain");
    expect(second.$resource).toBe(first.$resource);
    expect(second.media_type).toBe("application/octet-stream"); // a ref names bytes: the first label stays
    // Not written again (a write replaces the file: a new inode), only marked as stored again
    // (its time, from which retention counts its age).
    const after = statSync(path);
    expect(after.ino).toBe(before.ino);
    expect(after.mtimeMs).toBeGreaterThanOrEqual(before.mtimeMs);
    expect(filesUnder(join(root, "dedupe"))).toEqual([
      `sha256/${sha(data).slice(0, 2)}/${sha(data).slice(2)}`,
      `sha256/${sha(data).slice(0, 2)}/${sha(data).slice(2)}.json`,
    ]);
  });

  it("stores empty content and distinct contents side by side", async () => {
    const store = fresh("many");
    const refs = await Promise.all(["a", "b", "", "a"].map((t) => store.put(new TextEncoder().encode(t), "text/plain; charset=utf-8")));
    expect(new Set(refs.map((r) => r.$resource)).size).toBe(3);
    expect(refs[2]?.size).toBe(0);
    const empty = await store.get(refs[2]!.$resource);
    expect(empty?.data.byteLength).toBe(0);
    expect(empty?.mediaType).toBe("text/plain; charset=utf-8");
    expect(new TextDecoder().decode((await store.get(refs[1]!.$resource))!.data)).toBe("b");
  });

  it("answers undefined for a well-formed ref it does not hold", async () => {
    const store = fresh("unknown");
    expect(await store.get(`res://sha256/${"0".repeat(64)}`)).toBeUndefined();
  });

  it("throws RESOURCE_REF_INVALID for a malformed ref", async () => {
    const store = fresh("malformed");
    for (const bad of [
      "",
      "sha256/" + "0".repeat(64),
      "res://sha256/" + "0".repeat(63),
      "res://sha256/" + "A".repeat(64),
      "res://md5/" + "0".repeat(32),
      "res://sha256/../../../etc/passwd",
      `res://sha256/${"0".repeat(64)}/x`,
    ]) {
      const err = await store.get(bad).catch((e: unknown) => e);
      expect(err, bad).toBeInstanceOf(SluiceError);
      expect((err as SluiceError).code).toBe("RESOURCE_REF_INVALID");
    }
    expect(() => parseResourceRef(42 as unknown as string)).toThrow(expect.objectContaining({ code: "RESOURCE_REF_INVALID" }));
  });

  it("rejects a bad media type", async () => {
    const store = fresh("mt");
    for (const bad of ["", "json", "a/b/c", "text/plain\nX: y"]) {
      await expect(store.put(new Uint8Array([1]), bad)).rejects.toMatchObject({ code: "INPUT_INVALID" });
    }
  });

  it("refuses content that no longer matches its hash", async () => {
    const store = fresh("corrupt");
    const data = new TextEncoder().encode("original");
    const ref = await store.put(data, "text/plain");
    const hex = sha(data);
    writeFileSync(join(root, "corrupt", "sha256", hex.slice(0, 2), hex.slice(2)), "tampered");
    await expect(store.get(ref.$resource)).rejects.toMatchObject({ code: "STORE_ERROR" });
  });

  it("reads bytes whose media type sidecar is missing as application/octet-stream", async () => {
    const store = fresh("nosidecar");
    const data = new TextEncoder().encode("bytes");
    const ref = await store.put(data, "text/plain");
    const hex = sha(data);
    rmSync(join(root, "nosidecar", "sha256", hex.slice(0, 2), `${hex.slice(2)}.json`));
    expect((await store.get(ref.$resource))?.mediaType).toBe("application/octet-stream");
  });
});
