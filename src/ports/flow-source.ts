/**
 * Where flows come from: a git checkout locally, the GitHub API on the server. Flows and the
 * config are always read at a commit, never from a work tree.
 */
export interface FlowFile {
  /** Path in the repository, e.g. `.github/flows/deploy.yml`. */
  path: string;
  text: string;
}

export interface FlowSource {
  /** "owner/name" on GitHub, the folder name locally: kv's namespace and the run's repo. */
  readonly repo: string;
  defaultBranch(): Promise<string>;
  /** The commit SHA a ref names; throws REF_NOT_FOUND. */
  resolve(ref: string): Promise<string>;
  /** The flow files at a commit (`.github/flows/*.yml|yaml`). */
  flowFiles(sha: string): Promise<FlowFile[]>;
  /** `.github/sluice.yml` at a commit, or undefined when there is none. */
  configFile(sha: string): Promise<FlowFile | undefined>;
  /** A file at a commit (function steps' `file`); undefined when absent. */
  readFile(sha: string, path: string): Promise<string | undefined>;
}

export const FLOWS_DIR = ".github/flows";
export const CONFIG_PATH = ".github/sluice.yml";
