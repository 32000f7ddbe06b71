/**
 * The simulator's git object model: blobs, trees and commits hashed exactly as git hashes
 * them, so SHAs look and behave like GitHub's. One ObjectStore per repository.
 */
import { createHash } from "node:crypto";

export type ObjectType = "blob" | "tree" | "commit";

export interface TreeEntry {
  name: string;
  /** "100644", "100755", "120000", "040000" (tree) or "160000" (submodule). */
  mode: string;
  type: ObjectType;
  sha: string;
}

export interface GitPerson {
  name: string;
  email: string;
  /** ISO 8601, second precision. */
  date: string;
}

export type GitObject =
  | { type: "blob"; content: Buffer }
  | { type: "tree"; entries: TreeEntry[] }
  | { type: "commit"; tree: string; parents: string[]; author: GitPerson; committer: GitPerson; message: string };

/** A file of a flattened tree: full path → entry. */
export interface FlatEntry {
  mode: string;
  type: ObjectType;
  sha: string;
}
export type FlatTree = Map<string, FlatEntry>;

export const EMPTY_TREE_SHA = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

function hashObject(type: ObjectType, body: Buffer): string {
  const header = Buffer.from(`${type} ${body.length}\0`);
  return createHash("sha1").update(header).update(body).digest("hex");
}

/** git's tree order: byte order of names, a tree's name compared as if it ended in "/". */
function treeOrder(a: TreeEntry, b: TreeEntry): number {
  const ka = a.type === "tree" ? `${a.name}/` : a.name;
  const kb = b.type === "tree" ? `${b.name}/` : b.name;
  return Buffer.compare(Buffer.from(ka), Buffer.from(kb));
}

function personLine(p: GitPerson): string {
  const seconds = Math.floor(Date.parse(p.date) / 1000);
  return `${p.name} <${p.email}> ${seconds} +0000`;
}

export function isoNow(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

export class ObjectStore {
  private readonly objects = new Map<string, GitObject>();

  has(sha: string): boolean {
    return this.objects.has(sha);
  }

  get(sha: string): GitObject | undefined {
    return this.objects.get(sha);
  }

  /** The full SHA an abbreviated one (7+ hex digits) names, when it is unambiguous. */
  expand(prefix: string): string | undefined {
    if (!/^[0-9a-f]{7,40}$/.test(prefix)) return undefined;
    if (prefix.length === 40) return this.objects.has(prefix) ? prefix : undefined;
    let found: string | undefined;
    for (const sha of this.objects.keys()) {
      if (sha.startsWith(prefix)) {
        if (found) return undefined;
        found = sha;
      }
    }
    return found;
  }

  writeBlob(content: Buffer | string): string {
    const buf = typeof content === "string" ? Buffer.from(content, "utf8") : content;
    const sha = hashObject("blob", buf);
    if (!this.objects.has(sha)) this.objects.set(sha, { type: "blob", content: buf });
    return sha;
  }

  writeTree(entries: TreeEntry[]): string {
    const sorted = [...entries].sort(treeOrder);
    const parts: Buffer[] = [];
    for (const e of sorted) {
      const rawMode = e.type === "tree" ? "40000" : e.mode;
      parts.push(Buffer.from(`${rawMode} ${e.name}\0`), Buffer.from(e.sha, "hex"));
    }
    const sha = hashObject("tree", Buffer.concat(parts));
    if (!this.objects.has(sha)) this.objects.set(sha, { type: "tree", entries: sorted });
    return sha;
  }

  writeCommit(c: { tree: string; parents: string[]; author: GitPerson; committer: GitPerson; message: string }): string {
    const lines = [`tree ${c.tree}`, ...c.parents.map((p) => `parent ${p}`)];
    lines.push(`author ${personLine(c.author)}`, `committer ${personLine(c.committer)}`, "", c.message);
    const sha = hashObject("commit", Buffer.from(lines.join("\n")));
    if (!this.objects.has(sha)) this.objects.set(sha, { type: "commit", ...c, parents: [...c.parents] });
    return sha;
  }

  blob(sha: string): Buffer | undefined {
    const o = this.objects.get(sha);
    return o?.type === "blob" ? o.content : undefined;
  }

  tree(sha: string): TreeEntry[] | undefined {
    if (sha === EMPTY_TREE_SHA && !this.objects.has(sha)) return [];
    const o = this.objects.get(sha);
    return o?.type === "tree" ? o.entries : undefined;
  }

  commit(sha: string): Extract<GitObject, { type: "commit" }> | undefined {
    const o = this.objects.get(sha);
    return o?.type === "commit" ? o : undefined;
  }

  /** Every non-tree entry under a tree, by full path. */
  flatten(treeSha: string, prefix = "", out: FlatTree = new Map()): FlatTree {
    for (const e of this.tree(treeSha) ?? []) {
      const path = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.type === "tree") this.flatten(e.sha, path, out);
      else out.set(path, { mode: e.mode, type: e.type, sha: e.sha });
    }
    return out;
  }

  /** Every entry (trees included) under a tree, in git's recursive listing order. */
  walk(treeSha: string, prefix = ""): { path: string; entry: TreeEntry }[] {
    const out: { path: string; entry: TreeEntry }[] = [];
    for (const e of this.tree(treeSha) ?? []) {
      const path = prefix ? `${prefix}/${e.name}` : e.name;
      out.push({ path, entry: e });
      if (e.type === "tree") out.push(...this.walk(e.sha, path));
    }
    return out;
  }

  /** Builds the nested trees for a flat path map and returns the root tree's SHA. */
  buildTree(files: FlatTree): string {
    interface Dir {
      files: TreeEntry[];
      dirs: Map<string, Dir>;
    }
    const root: Dir = { files: [], dirs: new Map() };
    for (const [path, entry] of files) {
      const parts = path.split("/");
      const name = parts.pop() as string;
      let dir = root;
      for (const p of parts) {
        let next = dir.dirs.get(p);
        if (!next) {
          next = { files: [], dirs: new Map() };
          dir.dirs.set(p, next);
        }
        dir = next;
      }
      dir.files.push({ name, mode: entry.mode, type: entry.type, sha: entry.sha });
    }
    const write = (dir: Dir): string => {
      const entries = [...dir.files];
      for (const [name, sub] of dir.dirs) entries.push({ name, mode: "040000", type: "tree", sha: write(sub) });
      return this.writeTree(entries);
    };
    return write(root);
  }

  /** Commit SHAs reachable from `sha` (itself included). */
  ancestors(sha: string): Set<string> {
    const seen = new Set<string>();
    const stack = [sha];
    while (stack.length > 0) {
      const s = stack.pop() as string;
      if (seen.has(s)) continue;
      const c = this.commit(s);
      if (!c) continue;
      seen.add(s);
      stack.push(...c.parents);
    }
    return seen;
  }

  isAncestor(ancestor: string, of: string): boolean {
    return this.ancestors(of).has(ancestor);
  }

  /** The nearest common ancestor of two commits, breadth-first from `b`. */
  mergeBase(a: string, b: string): string | undefined {
    const fromA = this.ancestors(a);
    const queue = [b];
    const seen = new Set<string>();
    while (queue.length > 0) {
      const s = queue.shift() as string;
      if (seen.has(s)) continue;
      seen.add(s);
      if (fromA.has(s)) return s;
      queue.push(...(this.commit(s)?.parents ?? []));
    }
    return undefined;
  }

  /** Commits reachable from `head` but not from `base`, oldest first. */
  commitsBetween(base: string | undefined, head: string): string[] {
    const exclude = base ? this.ancestors(base) : new Set<string>();
    const out: string[] = [];
    const visit = (sha: string, seen: Set<string>): void => {
      if (seen.has(sha) || exclude.has(sha)) return;
      seen.add(sha);
      const c = this.commit(sha);
      if (!c) return;
      for (const p of c.parents) visit(p, seen);
      out.push(sha);
    };
    visit(head, new Set());
    return out;
  }
}

export type FileStatus = "added" | "removed" | "modified" | "renamed";

export interface FileChange {
  filename: string;
  status: FileStatus;
  sha: string | null;
  additions: number;
  deletions: number;
  changes: number;
  patch?: string;
}

/** The changes from one flat tree to another, by path, with line counts and a unified patch. */
export function diffTrees(store: ObjectStore, before: FlatTree, after: FlatTree): FileChange[] {
  const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
  const out: FileChange[] = [];
  for (const path of paths) {
    const a = before.get(path);
    const b = after.get(path);
    if (a && b && a.sha === b.sha && a.mode === b.mode) continue;
    const oldText = a ? (store.blob(a.sha)?.toString("utf8") ?? "") : "";
    const newText = b ? (store.blob(b.sha)?.toString("utf8") ?? "") : "";
    const d = lineDiff(oldText, newText);
    out.push({
      filename: path,
      status: !a ? "added" : !b ? "removed" : "modified",
      sha: b ? b.sha : null,
      additions: d.additions,
      deletions: d.deletions,
      changes: d.additions + d.deletions,
      patch: d.patch,
    });
  }
  return out;
}

function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/**
 * A line diff by longest common subsequence, as one hunk per run of changes with three lines
 * of context. Large inputs fall back to "all removed, all added".
 */
export function lineDiff(oldText: string, newText: string): { additions: number; deletions: number; patch: string } {
  const a = splitLines(oldText);
  const b = splitLines(newText);
  type Op = { kind: " " | "-" | "+"; line: string; oldNo: number; newNo: number };
  const ops: Op[] = [];
  if (a.length * b.length > 4_000_000) {
    a.forEach((line, i) => ops.push({ kind: "-", line, oldNo: i + 1, newNo: 0 }));
    b.forEach((line, i) => ops.push({ kind: "+", line, oldNo: a.length, newNo: i + 1 }));
  } else {
    const n = a.length;
    const m = b.length;
    const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
    for (let i = n - 1; i >= 0; i--) {
      const row = lcs[i] as Uint32Array;
      const below = lcs[i + 1] as Uint32Array;
      for (let j = m - 1; j >= 0; j--) {
        row[j] = a[i] === b[j] ? (below[j + 1] as number) + 1 : Math.max(below[j] as number, row[j + 1] as number);
      }
    }
    let i = 0;
    let j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && a[i] === b[j]) {
        ops.push({ kind: " ", line: a[i] as string, oldNo: i + 1, newNo: j + 1 });
        i++;
        j++;
      } else if (j < m && (i >= n || (lcs[i]?.[j + 1] ?? 0) > (lcs[i + 1]?.[j] ?? 0))) {
        ops.push({ kind: "+", line: b[j] as string, oldNo: i, newNo: j + 1 });
        j++;
      } else {
        ops.push({ kind: "-", line: a[i] as string, oldNo: i + 1, newNo: j });
        i++;
      }
    }
  }
  const additions = ops.filter((o) => o.kind === "+").length;
  const deletions = ops.filter((o) => o.kind === "-").length;
  // Group changes into hunks with 3 lines of context.
  const changed = ops.map((o, idx) => (o.kind === " " ? -1 : idx)).filter((idx) => idx >= 0);
  const hunks: string[] = [];
  let k = 0;
  while (k < changed.length) {
    const start = Math.max(0, (changed[k] as number) - 3);
    let end = Math.min(ops.length - 1, (changed[k] as number) + 3);
    while (k + 1 < changed.length && (changed[k + 1] as number) - 3 <= end + 1) {
      k++;
      end = Math.min(ops.length - 1, (changed[k] as number) + 3);
    }
    k++;
    const slice = ops.slice(start, end + 1);
    const oldLines = slice.filter((o) => o.kind !== "+");
    const newLines = slice.filter((o) => o.kind !== "-");
    const oldStart = oldLines[0]?.oldNo ?? (slice[0]?.oldNo ?? 0);
    const newStart = newLines[0]?.newNo ?? (slice[0]?.newNo ?? 0);
    hunks.push(
      `@@ -${oldStart},${oldLines.length} +${newStart},${newLines.length} @@\n` +
        slice.map((o) => `${o.kind}${o.line}`).join("\n"),
    );
  }
  return { additions, deletions, patch: hunks.join("\n") };
}
