/** Flows from a local git repository (simple-git), read at a commit, never from the work tree. */
import { basename } from "node:path";
import { simpleGit, type SimpleGit } from "simple-git";
import { SluiceError } from "../../core/errors.js";
import { CONFIG_PATH, FLOWS_DIR, type FlowFile, type FlowSource } from "../../ports/flow-source.js";

export class GitFlowSource implements FlowSource {
  readonly repo: string;
  private readonly git: SimpleGit;

  private constructor(
    readonly root: string,
    private readonly env: NodeJS.ProcessEnv,
    repo: string,
  ) {
    this.git = simpleGit({ baseDir: root });
    this.repo = repo;
  }

  /** Opens the repository that contains `dir`; throws NOT_A_REPOSITORY outside one. */
  static async open(dir: string, env: NodeJS.ProcessEnv = process.env): Promise<GitFlowSource> {
    let root: string;
    try {
      root = (await simpleGit({ baseDir: dir }).revparse(["--show-toplevel"])).trim();
    } catch {
      throw new SluiceError("NOT_A_REPOSITORY", `${dir} is not inside a git repository: Sluice reads flows from commits`, { dir });
    }
    // The repository's name on GitHub when its origin is there (`owner/name`: what `github`
    // steps act on through a local `github` connection), else the folder's name.
    const origin = (await simpleGit({ baseDir: root }).raw(["config", "--get", "remote.origin.url"]).catch(() => "")).trim();
    return new GitFlowSource(root, env, ownerRepo(origin) ?? basename(root));
  }

  async defaultBranch(): Promise<string> {
    if (this.env.SLUICE_DEFAULT_BRANCH) return this.env.SLUICE_DEFAULT_BRANCH;
    try {
      const ref = (await this.git.raw(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"])).trim();
      if (ref) return ref.replace(/^refs\/remotes\/origin\//, "");
    } catch {
      // no remote: look at the local branches
    }
    const branches = (await this.git.raw(["for-each-ref", "--format=%(refname:short)", "refs/heads/"])).split("\n").filter(Boolean);
    for (const name of ["main", "master"]) if (branches.includes(name)) return name;
    const configured = (await this.git.raw(["config", "--get", "init.defaultBranch"]).catch(() => "")).trim();
    if (configured && branches.includes(configured)) return configured;
    const current = (await this.git.raw(["rev-parse", "--abbrev-ref", "HEAD"]).catch(() => "")).trim();
    if (current && current !== "HEAD") return current;
    throw new SluiceError("REF_NOT_FOUND", "cannot tell the default branch: the repository has no branches (commit something first)");
  }

  async resolve(ref: string): Promise<string> {
    try {
      return (await this.git.raw(["rev-parse", "--verify", "--quiet", `${ref}^{commit}`])).trim() || this.notFound(ref);
    } catch {
      return this.notFound(ref);
    }
  }

  private notFound(ref: string): never {
    throw new SluiceError("REF_NOT_FOUND", `'${ref}' does not name a commit in ${this.root}`, { ref });
  }

  async flowFiles(sha: string): Promise<FlowFile[]> {
    const listing = await this.git.raw(["ls-tree", "--name-only", `${sha}:${FLOWS_DIR}`]).catch(() => "");
    const names = listing.split("\n").filter((n) => /\.ya?ml$/i.test(n)).sort();
    return Promise.all(
      names.map(async (name) => {
        const path = `${FLOWS_DIR}/${name}`;
        return { path, text: await this.git.show([`${sha}:${path}`]) };
      }),
    );
  }

  async configFile(sha: string): Promise<FlowFile | undefined> {
    const text = await this.readFile(sha, CONFIG_PATH);
    return text === undefined ? undefined : { path: CONFIG_PATH, text };
  }

  async readFile(sha: string, path: string): Promise<string | undefined> {
    try {
      return await this.git.show([`${sha}:${path}`]);
    } catch {
      return undefined;
    }
  }

  /** Uncommitted changes under `.github/flows/` or to the config: they are in no release. */
  async uncommittedFlowChanges(): Promise<string[]> {
    const status = await this.git.raw(["status", "--porcelain", "--untracked-files=all", "--", FLOWS_DIR, CONFIG_PATH]);
    return status
      .split("\n")
      .filter(Boolean)
      .map((l) => l.slice(3));
  }

  async currentBranch(): Promise<string | undefined> {
    const b = (await this.git.raw(["rev-parse", "--abbrev-ref", "HEAD"]).catch(() => "")).trim();
    return b && b !== "HEAD" ? b : undefined;
  }
}

/** `owner/name` from a remote URL (https, ssh or scp-like form), or undefined. */
export function ownerRepo(url: string): string | undefined {
  const m = /^(?:[a-z+]+:\/\/)?(?:[^@/]+@)?[^/:]+[:/]([^/]+)\/([^/]+?)(?:\.git)?\/?$/i.exec(url.trim());
  return m ? `${m[1]}/${m[2]}` : undefined;
}
