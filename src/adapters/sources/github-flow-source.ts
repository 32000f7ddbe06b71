/**
 * Flows from GitHub, read at a commit through the contents and git APIs. Everything read at a
 * commit SHA is immutable, so it is cached by SHA (one cache per process, bounded); only the
 * default branch and the SHA a branch names are asked again. GitHub says how large a file is
 * before it is downloaded: a flow or config file over MAX_FLOW_FILE_BYTES never is.
 */
import { SluiceError } from "../../core/errors.js";
import { MAX_FLOW_FILE_BYTES } from "../../core/flow/yaml-source.js";
import { CONFIG_PATH, FLOWS_DIR, type FlowFile, type FlowSource } from "../../ports/flow-source.js";
import type { GitHubApi } from "../../ports/step-executor.js";

/**
 * A flow or config file with the size GitHub gives for it. One over MAX_FLOW_FILE_BYTES is not
 * downloaded: its `text` is empty, and `size` is what to refuse it with (FLOW_TOO_LARGE).
 */
export interface SizedFlowFile extends FlowFile {
  size: number;
}

/** A flow source that gives each flow and config file with its size: what snapshots are made from. */
export interface SizedFlowSource extends FlowSource {
  flowFiles(sha: string): Promise<SizedFlowFile[]>;
  configFile(sha: string): Promise<SizedFlowFile | undefined>;
}

const SHA = /^[0-9a-f]{40}$/;

/** A small LRU map: SHA-keyed entries never go stale, they only take room. */
export class ShaCache {
  private readonly map = new Map<string, Promise<unknown>>();
  constructor(private readonly max = 5_000) {}

  get<T>(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.map.get(key);
    if (hit) {
      this.map.delete(key);
      this.map.set(key, hit);
      return hit as Promise<T>;
    }
    const p = load();
    this.map.set(key, p);
    // A failed read is not kept: the next caller asks again.
    p.catch(() => this.map.get(key) === p && this.map.delete(key));
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value as string);
    return p;
  }

  get size(): number {
    return this.map.size;
  }
}

const sharedCache = new ShaCache();

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown })?.status;
  return typeof s === "number" ? s : undefined;
}

function unavailable(repo: string, what: string, e: unknown): SluiceError {
  return new SluiceError("GITHUB_UNAVAILABLE", `GitHub did not answer ${what} of ${repo}: ${e instanceof Error ? e.message : String(e)}`, {
    repo,
    status: statusOf(e) ?? null,
  });
}

interface DirEntry {
  name: string;
  path: string;
  sha: string;
  type: string;
  size: number;
}

/** The contents API's answer for a file. */
interface FileEntry {
  type?: string;
  sha?: string;
  content?: string;
  encoding?: string;
  size?: number;
}

export class GitHubFlowSource implements SizedFlowSource {
  private readonly owner: string;
  private readonly name: string;
  private branch: Promise<string> | undefined;

  constructor(
    readonly repo: string,
    private readonly api: GitHubApi,
    private readonly cache: ShaCache = sharedCache,
  ) {
    const [owner, name] = repo.split("/");
    if (!owner || !name) throw new SluiceError("USAGE", `a repository is owner/name, not '${repo}'`);
    this.owner = owner;
    this.name = name;
  }

  defaultBranch(): Promise<string> {
    this.branch ??= this.api.request("GET /repos/{owner}/{repo}", { owner: this.owner, repo: this.name }).then(
      (r) => String(r.data.default_branch),
      (e) => {
        this.branch = undefined;
        if (statusOf(e) === 404) throw new SluiceError("NOT_FOUND", `repository ${this.repo} is not visible to the app (is it installed there?)`, { repo: this.repo });
        throw unavailable(this.repo, "the repository", e);
      },
    );
    return this.branch;
  }

  async resolve(ref: string): Promise<string> {
    if (SHA.test(ref)) return ref;
    try {
      const r = await this.api.request("GET /repos/{owner}/{repo}/commits/{ref}", { owner: this.owner, repo: this.name, ref });
      return String(r.data.sha);
    } catch (e) {
      const s = statusOf(e);
      if (s === 404 || s === 422) throw new SluiceError("REF_NOT_FOUND", `'${ref}' does not name a commit in ${this.repo}`, { ref, repo: this.repo });
      throw unavailable(this.repo, `the ref ${ref}`, e);
    }
  }

  /** The files of a folder at a commit (undefined when there is no such folder). */
  private listDir(sha: string, dir: string): Promise<DirEntry[] | undefined> {
    return this.cache.get(`dir:${this.repo}@${sha}:${dir}`, async () => {
      try {
        const r = await this.api.request("GET /repos/{owner}/{repo}/contents/{path}", { owner: this.owner, repo: this.name, path: dir, ref: sha });
        return Array.isArray(r.data) ? (r.data as DirEntry[]) : undefined;
      } catch (e) {
        if (statusOf(e) === 404) return undefined;
        throw unavailable(this.repo, `${dir} at ${sha.slice(0, 7)}`, e);
      }
    });
  }

  /** A blob's text by its SHA (the same blob at many commits is read once). */
  private blob(blobSha: string): Promise<string> {
    return this.cache.get(`blob:${this.repo}:${blobSha}`, async () => {
      try {
        const r = await this.api.request("GET /repos/{owner}/{repo}/git/blobs/{file_sha}", { owner: this.owner, repo: this.name, file_sha: blobSha });
        return decode(r.data as { content?: string; encoding?: string });
      } catch (e) {
        throw unavailable(this.repo, `blob ${blobSha.slice(0, 7)}`, e);
      }
    });
  }

  async flowFiles(sha: string): Promise<SizedFlowFile[]> {
    const entries = (await this.listDir(sha, FLOWS_DIR)) ?? [];
    const files = entries.filter((e) => e.type === "file" && /\.ya?ml$/i.test(e.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return Promise.all(
      files.map(async (f) => ({ path: `${FLOWS_DIR}/${f.name}`, text: f.size > MAX_FLOW_FILE_BYTES ? "" : await this.blob(f.sha), size: f.size })),
    );
  }

  async configFile(sha: string): Promise<SizedFlowFile | undefined> {
    const entry = await this.fileEntry(sha, CONFIG_PATH);
    if (!entry) return undefined;
    const size = entry.size ?? 0;
    return { path: CONFIG_PATH, text: size > MAX_FLOW_FILE_BYTES ? "" : ((await this.text(entry)) ?? ""), size };
  }

  async readFile(sha: string, path: string): Promise<string | undefined> {
    const entry = await this.fileEntry(sha, path);
    return entry && this.text(entry);
  }

  /** What the contents API says of a file at a commit (undefined when there is no such file). */
  private fileEntry(sha: string, path: string): Promise<FileEntry | undefined> {
    const clean = path.replace(/^\/+/, "");
    return this.cache.get(`file:${this.repo}@${sha}:${clean}`, async () => {
      let data: FileEntry | unknown[];
      try {
        data = (await this.api.request("GET /repos/{owner}/{repo}/contents/{path}", { owner: this.owner, repo: this.name, path: clean, ref: sha })).data;
      } catch (e) {
        if (statusOf(e) === 404) return undefined;
        throw unavailable(this.repo, `${clean} at ${sha.slice(0, 7)}`, e);
      }
      return Array.isArray(data) || data.type !== "file" ? undefined : data;
    });
  }

  private async text(entry: FileEntry): Promise<string | undefined> {
    // The contents API leaves `content` empty for files over 1 MB: read the blob instead.
    if (entry.encoding === "base64" && typeof entry.content === "string" && (entry.content !== "" || entry.size === 0)) return decode(entry);
    return entry.sha ? this.blob(entry.sha) : undefined;
  }
}

function decode(data: { content?: string; encoding?: string }): string {
  const content = data.content ?? "";
  return data.encoding === "base64" ? Buffer.from(content, "base64").toString("utf8") : content;
}
