/**
 * One call to a ready GitHub: a simulator with an app, its installation on the owner, one
 * repository, the environment Probot reads, and an Octokit authenticated as the installation.
 */
import { Octokit } from "@octokit/rest";
import { GitHubSimulator, type FileInput } from "./simulator.js";
import { generateAppKeyPair } from "./jwt.js";
import type { SimApp, SimInstallation, SimRepo } from "./state.js";

export interface GitHubFixture {
  sim: GitHubSimulator;
  app: SimApp;
  installation: SimInstallation;
  repo: SimRepo;
  /** PKCS#1 PEM private key of the app. */
  privateKey: string;
  webhookSecret: string;
  /** APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, GHE_HOST, GHE_PROTOCOL, LOG_LEVEL for createProbot({ env }). */
  env: Record<string, string>;
  /** A plain @octokit/rest Octokit with a fresh installation token, on `sim.url`. */
  octokit(): Octokit;
  /** The `ctx.github` an executor expects, backed by octokit(), acting as the app's bot. */
  githubApi(): { request(route: string, params?: Record<string, unknown>): Promise<any>; identity(): Promise<{ login: string }> };
}

export const quietLog = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

export async function startGitHub(
  opts: { repo?: string; files?: Record<string, FileInput>; defaultBranch?: string; appId?: number; installationId?: number } = {},
): Promise<GitHubFixture> {
  const sim = await GitHubSimulator.start();
  const keys = generateAppKeyPair();
  const fullName = opts.repo ?? "acme/widgets";
  const owner = fullName.split("/")[0] as string;
  const app = sim.addApp({ id: opts.appId ?? 4242, slug: "sluice", publicKey: keys.publicKey, owner });
  const installation = sim.addInstallation({ id: opts.installationId ?? 77, appId: app.id, account: owner });
  const repo = sim.createRepo(fullName, {
    ...(opts.files ? { files: opts.files } : {}),
    ...(opts.defaultBranch ? { defaultBranch: opts.defaultBranch } : {}),
  });
  const webhookSecret = "sim-webhook-secret";
  const octokit = (): Octokit =>
    new Octokit({ baseUrl: sim.url, auth: sim.createInstallationToken(installation.id).token, log: quietLog });
  return {
    sim,
    app,
    installation,
    repo,
    privateKey: keys.privateKey,
    webhookSecret,
    env: {
      APP_ID: String(app.id),
      PRIVATE_KEY: keys.privateKey,
      WEBHOOK_SECRET: webhookSecret,
      GHE_HOST: sim.host,
      GHE_PROTOCOL: "http",
      LOG_LEVEL: "fatal",
    },
    octokit,
    githubApi() {
      const o = octokit();
      return { request: (route: string, params?: Record<string, unknown>) => o.request(route, params), identity: async () => ({ login: app.bot.login }) };
    },
  };
}
