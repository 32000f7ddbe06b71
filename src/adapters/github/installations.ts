/**
 * The GitHub API as the app's installation on a repository: the installation id comes from the
 * webhook that named the repository, else from `GET /repos/{o}/{r}/installation` (as the app);
 * Probot mints and caches the installation tokens.
 */
import { SluiceError } from "../../core/errors.js";
import type { GitHubApi } from "../../ports/step-executor.js";

/** What is needed of Probot: an Octokit as the app (no id) or as one of its installations. */
export interface AppAuth {
  auth(installationId?: number): Promise<{ request: (route: string, params?: Record<string, unknown>) => Promise<unknown> }>;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown })?.status;
  return typeof s === "number" ? s : undefined;
}

function asApi(octokit: { request: (route: string, params?: Record<string, unknown>) => Promise<unknown> }): GitHubApi {
  return { request: (route, params) => octokit.request(route, params) as ReturnType<GitHubApi["request"]> };
}

export class Installations {
  private readonly ids = new Map<string, number>();
  private readonly apis = new Map<number, Promise<GitHubApi>>();
  private identity: Promise<{ slug: string; login: string; id: number }> | undefined;

  constructor(private readonly app: AppAuth) {}

  /** Remembers the installation a webhook named for a repository. */
  remember(repo: string, installationId: number | undefined): void {
    if (typeof installationId === "number") this.ids.set(repo.toLowerCase(), installationId);
  }

  async installationId(repo: string): Promise<number> {
    const known = this.ids.get(repo.toLowerCase());
    if (known !== undefined) return known;
    const [owner, name] = repo.split("/");
    if (!owner || !name) throw new SluiceError("USAGE", `a repository is owner/name, not '${repo}'`);
    try {
      const app = asApi(await this.app.auth());
      const r = await app.request("GET /repos/{owner}/{repo}/installation", { owner, repo: name });
      const id = Number(r.data.id);
      this.ids.set(repo.toLowerCase(), id);
      return id;
    } catch (e) {
      if (statusOf(e) === 404) throw new SluiceError("NOT_FOUND", `the app is not installed on ${repo}`, { repo });
      throw new SluiceError("GITHUB_UNAVAILABLE", `could not find the app's installation on ${repo}: ${e instanceof Error ? e.message : String(e)}`, { repo });
    }
  }

  /** The API as the installation on `repo` (or the installation given). */
  async api(repo: string, installationId?: number): Promise<GitHubApi> {
    if (installationId !== undefined) this.remember(repo, installationId);
    const id = installationId ?? (await this.installationId(repo));
    let api = this.apis.get(id);
    if (!api) {
      api = this.app.auth(id).then((octokit) => ({ ...asApi(octokit), identity: this.identityOf }));
      api.catch(() => this.apis.delete(id));
      this.apis.set(id, api);
    }
    return api;
  }

  /** An API handle for `repo` that finds the installation on its first request (for the runtime). */
  lazy(repo: string): GitHubApi {
    return { request: async (route, params) => (await this.api(repo)).request(route, params), identity: this.identityOf };
  }

  /** Who every installation of the app acts as: its comments are authored by the app's bot. */
  private readonly identityOf: NonNullable<GitHubApi["identity"]> = async () => ({ login: (await this.bot()).login });

  /** The app's slug and the login it acts as (`<slug>[bot]`). */
  bot(): Promise<{ slug: string; login: string; id: number }> {
    this.identity ??= this.app
      .auth()
      .then(asApi)
      .then(async (app) => {
        const r = await app.request("GET /app");
        const slug = String(r.data.slug);
        return { slug, login: `${slug}[bot]`, id: Number(r.data.id) };
      });
    this.identity.catch(() => (this.identity = undefined));
    return this.identity;
  }
}
