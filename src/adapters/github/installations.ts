/**
 * The GitHub API as the app's installation on a repository: the installation id comes from the
 * webhook that named the repository, else from `GET /repos/{o}/{r}/installation` (as the app);
 * Probot mints and caches the installation tokens.
 *
 * Every request of an installation goes through its write budget (budget.ts, client.ts). So
 * the installation's Octokit is made with Probot's own factory but with Probot's throttling and
 * retries off: Probot's throttle lives in each process's memory (N servers would spend N
 * budgets), spaces every write a second apart (a burst of commands would take minutes), and
 * does not retry a secondary limit; its retry plugin would send requests the budget never
 * counted. The budget obeys every hold for every process instead, and sends a request refused
 * by a rate limit again after the hold.
 */
import { SluiceError } from "../../core/errors.js";
import type { GitHubApi } from "../../ports/step-executor.js";
import type { SluiceMetrics } from "../server/metrics.js";
import type { GitHubBudget } from "./budget.js";
import { budgetedClient, deferredClient, type BudgetedGitHub, type Requester } from "./client.js";

/** An Octokit as Probot makes them: `request`, and `auth` to make an installation's client. */
export interface AppOctokit extends Requester {
  auth(options?: Record<string, unknown>): Promise<unknown>;
}

/** What is needed of Probot: its Octokit as the app. */
export interface AppAuth {
  auth(): Promise<AppOctokit>;
}

export interface InstallationsOptions {
  budget: GitHubBudget;
  metrics?: SluiceMetrics;
  /**
   * The longest a request made while handling a webhook waits for the budget before the
   * delivery is tried again later (a delivery never holds a place in the inbox for long).
   * Default 30 s.
   */
  handlerMaxWaitMs?: number;
}

function statusOf(e: unknown): number | undefined {
  const s = (e as { status?: unknown })?.status;
  return typeof s === "number" ? s : undefined;
}

interface FactoryArgs {
  octokit: { constructor: new (options: Record<string, unknown>) => Requester };
  octokitOptions: Record<string, unknown> & { auth?: Record<string, unknown> };
  [key: string]: unknown;
}

export class Installations {
  private readonly ids = new Map<string, number>();
  private readonly apis = new Map<number, Promise<BudgetedGitHub>>();
  private identity: Promise<{ slug: string; login: string; id: number }> | undefined;

  constructor(
    private readonly app: AppAuth,
    private readonly opts: InstallationsOptions,
  ) {}

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
      const app = await this.app.auth();
      const r = (await app.request("GET /repos/{owner}/{repo}/installation", { owner, repo: name })) as { data: { id: unknown } };
      const id = Number(r.data.id);
      this.ids.set(repo.toLowerCase(), id);
      return id;
    } catch (e) {
      if (statusOf(e) === 404) throw new SluiceError("NOT_FOUND", `the app is not installed on ${repo}`, { repo });
      throw new SluiceError("GITHUB_UNAVAILABLE", `could not find the app's installation on ${repo}: ${e instanceof Error ? e.message : String(e)}`, { repo });
    }
  }

  /** The installation's Octokit: Probot's factory, with Probot's throttling and retries off (see above). */
  private async octokitOf(id: number): Promise<Requester> {
    const app = await this.app.auth();
    return (await app.auth({
      type: "installation",
      installationId: id,
      factory: ({ octokit, octokitOptions, ...otherOptions }: FactoryArgs) =>
        new octokit.constructor({
          ...octokitOptions,
          throttle: { enabled: false },
          retry: { enabled: false },
          auth: { ...octokitOptions.auth, otherOptions, installationId: id },
        }),
    })) as Requester;
  }

  /** The API as the installation on `repo` (or the installation given), for the webhook handlers. */
  async api(repo: string, installationId?: number): Promise<BudgetedGitHub> {
    return (await this.client(repo, installationId)).at("reply", { maxWaitMs: this.opts.handlerMaxWaitMs ?? 30_000 });
  }

  /** The installation's budgeted API, its requests waiting as long as the budget needs. */
  async client(repo: string, installationId?: number): Promise<BudgetedGitHub> {
    if (installationId !== undefined) this.remember(repo, installationId);
    const id = installationId ?? (await this.installationId(repo));
    let api = this.apis.get(id);
    if (!api) {
      api = this.octokitOf(id).then((octokit) =>
        budgetedClient({ octokit, budget: this.opts.budget, installation: String(id), identity: this.identityOf, ...(this.opts.metrics ? { metrics: this.opts.metrics } : {}) }),
      );
      api.catch(() => this.apis.delete(id));
      this.apis.set(id, api);
    }
    return api;
  }

  /**
   * An API handle for `repo` that finds the installation on its first request: what the runtime
   * hands `github` and `notify` steps, whose requests wait for the budget as long as their
   * step may run.
   */
  lazy(repo: string): BudgetedGitHub {
    return deferredClient(() => this.client(repo), this.identityOf);
  }

  /** Who every installation of the app acts as: its comments are authored by the app's bot. */
  private readonly identityOf: NonNullable<GitHubApi["identity"]> = async () => ({ login: (await this.bot()).login });

  /** The app's slug and the login it acts as (`<slug>[bot]`). */
  bot(): Promise<{ slug: string; login: string; id: number }> {
    this.identity ??= this.app.auth().then(async (app) => {
      const r = (await app.request("GET /app")) as { data: { slug: unknown; id: unknown } };
      const slug = String(r.data.slug);
      return { slug, login: `${slug}[bot]`, id: Number(r.data.id) };
    });
    this.identity.catch(() => (this.identity = undefined));
    return this.identity;
  }
}
