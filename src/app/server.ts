/**
 * The composition root of the server (`sluice serve`, `npm start`): the Probot app with the
 * worker, the inbox, the scheduler and the check-run reporter in one process.
 *
 * Configuration comes from the environment, validated up front (ENV_INVALID lists every
 * problem). Without GitHub App credentials Probot's `run()` starts its setup flow, which
 * registers the app from `app.yml`; with them it serves webhooks on `/api/github/webhooks`
 * and Sluice's routes through Probot 14's `addHandler`. State lives in PostgreSQL with
 * DATABASE_URL, else in SQLite under SLUICE_HOME (default `.sluice/` of the working directory).
 */
import { createPrivateKey } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { getPrivateKey } from "@probot/get-private-key";
import { Probot, run, Server, type ApplicationFunction } from "probot";
import type { Logger as PinoLogger } from "pino";
import { createServerLog, fromPino, logFormatOf, type LogFormat } from "../adapters/logger.js";
import { SecretStore } from "../adapters/secrets/secrets.js";
import { defaultExecutors } from "../adapters/steps/index.js";
import { FileResourceStore } from "../adapters/store/file-resource-store.js";
import { createRetention, readRetentionEnv, type Retention, type RetentionConfig } from "../adapters/store/retention.js";
import { openRunStore } from "../adapters/store/index.js";
import { GitFlowSource } from "../adapters/sources/git-flow-source.js";
import { GitHubFlowSource } from "../adapters/sources/github-flow-source.js";
import { createBudget, readBudgetEnv, type GitHubBudget } from "../adapters/github/budget.js";
import { deliveryKey, handleDelivery } from "../adapters/github/dispatch.js";
import { createGateNotices, NOTICES_NAMESPACE, type GateNotices } from "../adapters/github/gate-notices.js";
import { createHooksRoute } from "../adapters/github/hooks-route.js";
import { createInbox, type Inbox } from "../adapters/github/inbox.js";
import { Installations } from "../adapters/github/installations.js";
import { registerIntake, webhooksAtRoot } from "../adapters/github/intake.js";
import { createOutbox, OUTBOX_NAMESPACE, type Outbox } from "../adapters/github/outbox.js";
import { createReporter, type Reporter } from "../adapters/github/reporter.js";
import { createScheduler, type Scheduler } from "../adapters/github/scheduler.js";
import { releaseSnapshotAt } from "../adapters/github/snapshot.js";
import { runUrl, type GitHubDeps } from "../adapters/github/deps.js";
import { openLinkSigner, type LinkSigner } from "../adapters/server/auth.js";
import { metrics as defaultMetrics, observeStore } from "../adapters/server/metrics.js";
import { apiCheckout, apiGitHub } from "../adapters/server/api-github.js";
import { requestUrl } from "../adapters/server/api-http.js";
import { createRoutes } from "../adapters/server/routes.js";
import { createOAuthClient } from "../adapters/server/oauth.js";
import { createWebHandler } from "../adapters/server/web/handler.js";
import { SluiceError } from "../core/errors.js";
import type { Flow } from "../core/flow/types.js";
import type { RunStore } from "../ports/run-store.js";
import { checkoutRepo, findRepoRoot, localGitHub } from "./local.js";
import { createLocalScheduler, runLocalSchedules } from "./local-schedules.js";
import type { GitHubApi, Logger } from "../ports/step-executor.js";
import { isStoreUnavailable, Runtime } from "./runtime.js";
import { isGitHubRepo } from "../core/namespaces.js";


const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

export interface ServerConfig {
  /**
   * APP_ID and a private key are both set: serve webhooks. Without them the server serves
   * everything but GitHub (API, run pages, callbacks, worker) for local use, and Probot's setup
   * flow that registers the app (`/setup`, `/probot`).
   */
  credentials: boolean;
  appId?: number;
  port: number;
  host?: string;
  /** Base URL of run pages, callbacks and hooks as the world reaches them. */
  publicUrl: string;
  logLevel: (typeof LOG_LEVELS)[number];
  /** LOG_FORMAT: JSON lines, or Probot's pretty format (the default outside NODE_ENV=production). */
  logFormat: LogFormat;
  /** PostgreSQL URL, or undefined for SQLite in `home`. */
  databaseUrl?: string;
  home: string;
  /** The GitHub API Probot talks to (api.github.com, or GHE_PROTOCOL://GHE_HOST/api/v3). */
  githubApiUrl: string;
  leaseMs?: number;
  /** SLUICE_RETENTION_RUNS, SLUICE_RETENTION_DELIVERIES. */
  retention: RetentionConfig;
  /** The GitHub App's OAuth client (GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET): people sign in to the pages with it. */
  oauth?: { clientId: string; clientSecret: string };
}

/** Reads and checks the server's environment; one ENV_INVALID error names every problem. */
export function readServerConfig(env: NodeJS.ProcessEnv, cwd: string): ServerConfig {
  const problems: string[] = [];
  const logLevel = (env.LOG_LEVEL ?? "info") as ServerConfig["logLevel"];
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}, not '${env.LOG_LEVEL}'`);
  if (env.LOG_FORMAT && env.LOG_FORMAT !== "json" && env.LOG_FORMAT !== "pretty") problems.push(`LOG_FORMAT must be json or pretty, not '${env.LOG_FORMAT}'`);
  let port = 3000;
  if (env.PORT !== undefined && env.PORT !== "") {
    port = Number(env.PORT);
    if (!/^[0-9]+$/.test(env.PORT) || port < 1 || port > 65535) problems.push(`PORT must be a port number from 1 to 65535, not '${env.PORT}'`);
  }
  let appId: number | undefined;
  if (env.APP_ID) {
    appId = Number(env.APP_ID);
    if (!/^[0-9]+$/.test(env.APP_ID) || appId < 1) problems.push(`APP_ID must be the app's numeric id, not '${env.APP_ID}'`);
  }
  const hasKey = Boolean(env.PRIVATE_KEY || env.PRIVATE_KEY_PATH);
  if (hasKey) {
    // Probot reads the key the same way and, when it cannot, quietly starts its setup flow
    // instead of the app: a key that is set but unusable stops the server here.
    const where = env.PRIVATE_KEY ? "PRIVATE_KEY" : `PRIVATE_KEY_PATH ${env.PRIVATE_KEY_PATH}`;
    let pem: string | null = null;
    try {
      pem = env.PRIVATE_KEY ? getPrivateKey({ env: { PRIVATE_KEY: env.PRIVATE_KEY }, cwd }) : readFileSync(resolve(cwd, env.PRIVATE_KEY_PATH!), "utf8");
    } catch (e) {
      problems.push(
        env.PRIVATE_KEY
          ? "PRIVATE_KEY is not a PEM private key: set it to the contents of the app's .pem file, BEGIN and END lines included (or its base64)"
          : `${where} cannot be read: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    if (pem !== null) {
      try {
        createPrivateKey(pem);
      } catch (e) {
        problems.push(`${where} is not a usable private key: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
  if (env.APP_ID && !hasKey) problems.push("APP_ID is set but neither PRIVATE_KEY nor PRIVATE_KEY_PATH is: set the app's private key (or unset APP_ID to register the app)");
  if (!env.APP_ID && hasKey) problems.push("a private key is set but APP_ID is not: set the app's numeric id");
  const credentials = Boolean(env.APP_ID && hasKey);
  if (credentials && !env.WEBHOOK_SECRET) problems.push("WEBHOOK_SECRET is required with app credentials: without it no delivery could be verified");
  const protocol = env.GHE_PROTOCOL ?? "https";
  if (protocol !== "http" && protocol !== "https") problems.push(`GHE_PROTOCOL must be http or https, not '${protocol}'`);
  if (env.GHE_HOST !== undefined && !/^[A-Za-z0-9.-]+(:[0-9]+)?$/.test(env.GHE_HOST)) {
    problems.push(`GHE_HOST is a host name (and port), without a scheme or path, not '${env.GHE_HOST}'`);
  }
  let publicUrl = `http://localhost:${port}`;
  if (env.SLUICE_PUBLIC_URL) {
    try {
      const u = new URL(env.SLUICE_PUBLIC_URL);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("not http(s)");
      publicUrl = env.SLUICE_PUBLIC_URL.replace(/\/+$/, "");
    } catch {
      problems.push(`SLUICE_PUBLIC_URL must be an http(s) URL, not '${env.SLUICE_PUBLIC_URL}'`);
    }
  }
  let leaseMs: number | undefined;
  if (env.SLUICE_LEASE_MS) {
    leaseMs = Number(env.SLUICE_LEASE_MS);
    if (!Number.isSafeInteger(leaseMs) || leaseMs < 100) problems.push(`SLUICE_LEASE_MS must be a whole number of milliseconds (100 or more), not '${env.SLUICE_LEASE_MS}'`);
  }
  // Probot's setup flow writes both; one without the other is a copy-paste slip, not "no login".
  if (Boolean(env.GITHUB_CLIENT_ID) !== Boolean(env.GITHUB_CLIENT_SECRET)) {
    problems.push(`${env.GITHUB_CLIENT_ID ? "GITHUB_CLIENT_ID is set but GITHUB_CLIENT_SECRET is not" : "GITHUB_CLIENT_SECRET is set but GITHUB_CLIENT_ID is not"}: set both (the app's OAuth client, for signing in to the pages) or neither`);
  }
  // GitHub's write budget (SLUICE_GITHUB_WRITES, SLUICE_GITHUB_IN_FLIGHT): read where it is made, checked here.
  problems.push(...readBudgetEnv(env).problems);
  const retention = readRetentionEnv(env);
  problems.push(...retention.problems);
  if (problems.length) throw new SluiceError("ENV_INVALID", `the server's environment is invalid: ${problems.join("; ")}`, { problems });
  return {
    credentials,
    ...(appId !== undefined ? { appId } : {}),
    port,
    ...(env.HOST ? { host: env.HOST } : {}),
    publicUrl,
    logLevel,
    logFormat: logFormatOf(env),
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    home: resolve(cwd, env.SLUICE_HOME ?? ".sluice"),
    githubApiUrl: env.GHE_HOST ? `${protocol}://${env.GHE_HOST}/api/v3` : "https://api.github.com",
    ...(leaseMs !== undefined ? { leaseMs } : {}),
    retention: retention.config,
    ...(env.GITHUB_CLIENT_ID && env.GITHUB_CLIENT_SECRET ? { oauth: { clientId: env.GITHUB_CLIENT_ID, clientSecret: env.GITHUB_CLIENT_SECRET } } : {}),
  };
}

export interface Sluice {
  config: ServerConfig;
  store: RunStore;
  runtime: Runtime;
  installations: Installations;
  inbox: Inbox;
  scheduler: Scheduler;
  reporter: Reporter;
  /** The app's writes to GitHub other than runs' check runs, sent at GitHub's pace. */
  outbox: Outbox;
  /** GitHub's write budget of each installation, shared through the store. */
  budget: GitHubBudget;
  /** Announces gates that open, escalate or near their deadline (comments, the policy's webhook). */
  notices: GateNotices;
  /** Prunes what retention lets go (one process at a time across the store). */
  retention: Retention;
  /**
   * Without the app's credentials, the git checkout the server was started in (if it was): its
   * flows are what the API starts and its live release's schedules tick, as `sluice worker` does.
   */
  checkout?: Checkout;
  /** Signs the links to run pages (the check runs' details_url) with the key in the store. */
  links: LinkSigner;
  logger: Logger;
  /**
   * Settles when the server cannot go on: its store gave up reaching the database (unreachable
   * for longer than SLUICE_DB_DEADLINE). A database restart shorter than that is waited out.
   */
  failed: Promise<SluiceError>;
  /** Stops the loops, waits for work in flight, closes the store. */
  stop(): Promise<void>;
}

export interface SluiceAppOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Sluice's own log; default: Probot's pino logger (one log for both, LOG_FORMAT). */
  logger?: Logger;
  /** How often the loops look at the store when nothing wakes them. Default 1 s. */
  pollMs?: number;
  /** Called once the app is composed and its loops run. */
  onReady?: (sluice: Sluice) => void;
}

/** A git checkout as a server without the app's credentials serves it. */
export interface Checkout {
  source: GitFlowSource;
  repo: string;
}

/** The checkout `cwd` is in, with its repository's name as local mode gives it; undefined outside one. */
async function openCheckout(cwd: string, env: NodeJS.ProcessEnv): Promise<Checkout | undefined> {
  let root: string;
  try {
    root = findRepoRoot(cwd);
  } catch {
    return undefined;
  }
  const source = await GitFlowSource.open(root, env);
  return { source, repo: checkoutRepo(source, root) };
}

/**
 * Everything the app needs, composed around a Probot instance. The loops (worker, inbox,
 * scheduler, reporter) start at once.
 */
export async function composeSluice(app: Probot, opts: SluiceAppOptions): Promise<{ sluice: Sluice; deps: GitHubDeps & { secrets: SecretStore } }> {
  const config = readServerConfig(opts.env, opts.cwd);
  const logger = opts.logger ?? (app.log ? fromPino(app.log) : fromPino(await createServerLog({ level: config.logLevel, format: config.logFormat })));
  const pollMs = opts.pollMs ?? 1_000;
  if (!existsSync(config.home)) {
    mkdirSync(config.home, { recursive: true });
    writeFileSync(join(config.home, ".gitignore"), "*\n");
  }
  // A database still starting (or restarting) is waited for, up to SLUICE_DB_DEADLINE.
  const store = await openRunStore(config.databaseUrl ?? join(config.home, "sluice.db"), { env: opts.env, logger });
  let links: LinkSigner;
  try {
    links = await openLinkSigner(store);
  } catch (e) {
    await store.close();
    throw e;
  }
  const secrets = new SecretStore(join(config.home, "secrets.json"), opts.env);
  // Every request to GitHub of this process, and of every process on the store, spends one
  // budget per installation (SPEC §5 "The GitHub budget").
  const budget = createBudget({ store, config: readBudgetEnv(opts.env).config, logger, metrics: defaultMetrics });
  const installations = new Installations(app, { budget, metrics: defaultMetrics });
  const background = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>) => {
    background.add(p);
    void p.finally(() => background.delete(p));
  };

  // Without the app's credentials the server is for local use: decisions as local mode makes them
  // (GitHub tells no permissions), and the flows and schedules of the checkout it runs in.
  const checkout = config.credentials ? undefined : await openCheckout(opts.cwd, opts.env);
  const resources = new FileResourceStore(join(config.home, "resources"));
  const runtime = new Runtime({
    store,
    resources,
    executors: defaultExecutors({ env: opts.env }),
    secrets,
    logger,
    mode: config.credentials ? "github" : "local",
    publicUrl: config.publicUrl,
    ...(config.leaseMs ? { leaseMs: config.leaseMs } : {}),
    ...(config.credentials
      ? {
          github: (repo: string) => installations.lazy(repo),
          readFile: (repo: string, sha: string, path: string) => new GitHubFlowSource(repo, installations.lazy(repo)).readFile(sha, path),
        }
      : checkout
        ? {
            github: (_repo: string, connection: Parameters<typeof localGitHub>[0], names: string[]) => localGitHub(connection, names),
            readFile: (_repo: string, sha: string, path: string) => checkout.source.readFile(sha, path),
          }
        : {}),
  });

  const githubFor = async (repo: string): Promise<GitHubApi | undefined> => {
    // A run of no GitHub repository (a local run's `_local/<folder>`) has no check run: no call is
    // made; nor is one by a server without the app's credentials.
    if (!config.credentials || !isGitHubRepo(repo)) return undefined;
    try {
      return await installations.client(repo);
    } catch (e) {
      if (e instanceof SluiceError && e.code === "NOT_FOUND") return undefined;
      throw e;
    }
  };
  const reporter = createReporter({ store, githubFor, publicUrl: config.publicUrl, links, logger, pollMs });
  runtime.onEvents((runId) => reporter.notify(runId));

  const kick = (runId: string): void => {
    reporter.notify(runId);
    track(
      runtime.advance(runId).catch((e: unknown) => logger.error("advancing a run failed", { run: runId, error: e instanceof Error ? (e.stack ?? e.message) : String(e) })),
    );
  };
  // Signals from GitHub (approvals, cancels) are recorded in the journal at once; the run then
  // advances in the background, so a long step never holds up the inbox.
  const signalRuntime = Object.assign(Object.create(runtime) as Runtime, {
    advance: (id: string): Promise<boolean> => {
      kick(id);
      return Promise.resolve(true);
    },
  });
  const outbox = createOutbox({ store, apiFor: githubFor, logger, owner: runtime.workerId, metrics: defaultMetrics, pollMs });
  const notices = createGateNotices({ store, runtime, outbox, logger, pageUrl: (id) => runUrl({ publicUrl: config.publicUrl, links }, id) });
  runtime.onEvents((runId, events) => {
    if (events.some((e) => e.type === "gate_opened" || e.type === "gate_escalated")) notices.wake(runId);
  });
  observeStore(defaultMetrics, {
    store,
    load: (id) => runtime.load(id),
    outboxDepth: async () => (await store.kvList(OUTBOX_NAMESPACE, runtime.now())).length,
    clock: () => runtime.now(),
  });
  const retention = createRetention({ store, resources, config: config.retention, logger, owner: runtime.workerId, runNamespaces: [NOTICES_NAMESPACE] });
  const deps: GitHubDeps & { secrets: SecretStore } = { runtime: signalRuntime, store, logger, installations, publicUrl: config.publicUrl, kick, secrets, links, outbox };

  const inbox = createInbox({
    store,
    logger,
    owner: runtime.workerId,
    handle: (d) => handleDelivery(deps, d),
    pollMs,
    keyOf: deliveryKey,
    holdOf: async (d) => {
      const id = (d.payload as { installation?: { id?: unknown } } | null)?.installation?.id;
      return typeof id === "number" ? (await budget.view(String(id))).hold || undefined : undefined;
    },
  });
  const flowsAt = async (repo: string, sha: string): Promise<Flow[]> => {
    const snapshot = await releaseSnapshotAt(new GitHubFlowSource(repo, installations.lazy(repo)), sha);
    return snapshot.flows.flatMap((f) => (f.flow ? [f.flow] : []));
  };
  const scheduler = createScheduler({ store, logger, flowsAt, onTick: () => inbox.wake() });

  const controller = new AbortController();
  let fail: (e: SluiceError) => void = () => undefined;
  const failed = new Promise<SluiceError>((resolve) => (fail = resolve));
  const running: [string, Promise<void>][] = [
    ["worker", runtime.work(controller.signal, pollMs)],
    ["inbox", inbox.start(controller.signal)],
    ["scheduler", scheduler.start(controller.signal)],
    ["reporter", reporter.start(controller.signal)],
    ["outbox", outbox.start(controller.signal)],
    ["notices", notices.start(controller.signal)],
    ["retention", retention.start(controller.signal)],
  ];
  if (checkout) {
    const ticks = createLocalScheduler({ store, source: async () => checkout.source, repo: async () => checkout.repo }, runtime, logger);
    running.push(["schedules", runLocalSchedules(ticks, runtime, logger, controller.signal)]);
  }
  const loops = running.map(([loop, p]) =>
    p.catch((e: unknown) => {
      logger.error("a server loop stopped", { loop, error: e instanceof Error ? e.message : String(e) });
      if (isStoreUnavailable(e)) fail(e as SluiceError);
    }),
  );

  let stopping: Promise<void> | undefined;
  const sluice: Sluice = {
    config,
    store,
    runtime,
    installations,
    inbox,
    scheduler,
    reporter,
    outbox,
    budget,
    notices,
    retention,
    ...(checkout ? { checkout } : {}),
    links,
    logger,
    failed,
    stop() {
      stopping ??= (async () => {
        controller.abort();
        await Promise.allSettled(loops);
        while (background.size) await Promise.allSettled([...background]);
        budget.close();
        await store.close();
      })();
      return stopping;
    },
  };
  return { sluice, deps };
}

/** The Probot application function: intake, routes and loops. */
export function sluiceApp(opts: SluiceAppOptions): ApplicationFunction {
  return async (app, { addHandler }) => {
    const { sluice, deps } = await composeSluice(app, opts);
    if (sluice.config.credentials) {
      registerIntake(app, {
        store: sluice.store,
        logger: sluice.logger,
        metrics: defaultMetrics,
        clock: () => sluice.runtime.now(),
        secret: opts.env.WEBHOOK_SECRET ?? "",
        recorded: () => sluice.inbox.wake(),
      });
      addHandler(webhooksAtRoot(app));
      addHandler(createHooksRoute(deps));
    } else {
      // Probot's setup flow lives at /probot; /setup is where Sluice's README sends people.
      addHandler((req, res) => {
        if (req.method !== "GET" || requestUrl(req)?.pathname !== "/setup") return false;
        res.writeHead(302, { location: "/probot" }).end();
        return true;
      });
    }
    // The pages for people come first: they answer /runs/<id> for sessions, tokens and links alike.
    addHandler(
      createWebHandler({
        runtime: sluice.runtime,
        store: sluice.store,
        publicUrl: sluice.config.publicUrl,
        links: sluice.links,
        logger: sluice.logger,
        // Without the app's credentials there is no installation to ask about people.
        githubFor: async (repo) =>
          sluice.config.credentials
            ? sluice.installations.client(repo).catch((e: unknown) => {
                if (e instanceof SluiceError && e.code === "NOT_FOUND") return undefined;
                throw e;
              })
            : undefined,
        ...(sluice.config.oauth ? { oauth: createOAuthClient({ ...sluice.config.oauth, apiUrl: sluice.config.githubApiUrl }) } : {}),
      }),
    );
    addHandler(
      createRoutes({
        runtime: sluice.runtime,
        store: sluice.store,
        publicUrl: sluice.config.publicUrl,
        links: sluice.links,
        logger: sluice.logger,
        ...(sluice.config.credentials
          ? { github: apiGitHub(sluice.store, sluice.installations, () => sluice.runtime.now()) }
          : sluice.checkout
            ? { github: apiCheckout(sluice.checkout.source, sluice.checkout.repo) }
            : {}),
      }),
    );
    sluice.logger.info("sluice is serving", {
      public_url: sluice.config.publicUrl,
      github: sluice.config.credentials ? sluice.config.githubApiUrl : "none: no app credentials, the setup flow is at /setup",
      store: sluice.config.databaseUrl ? "postgres" : "sqlite",
    });
    opts.onReady?.(sluice);
  };
}

export interface RunningServer {
  /** Probot's server (HTTP, webhooks, added handlers). */
  server: Server;
  /** Undefined only when the app could not be composed. */
  sluice?: Sluice;
  config: ServerConfig;
  /** http://host:port the server listens on. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Without credentials: Probot's setup flow (as `run()` starts it) and, beside it, the app with
 * no GitHub, so that the API, run pages, callbacks, the worker and schedules serve local use.
 */
async function startWithoutCredentials(appFn: ApplicationFunction, config: ServerConfig, log: PinoLogger): Promise<Server> {
  // Probot does not export its setup app; it is the one `run()` loads in setup mode.
  const setupModule = pathToFileURL(join(dirname(createRequire(import.meta.url).resolve("probot")), "apps", "setup.js")).href;
  const { setupAppFactory } = (await import(setupModule)) as { setupAppFactory: (o: { host: string; port: number; log: PinoLogger }) => Parameters<Server["loadHandlerFactory"]>[0] };
  const server = new Server({
    host: config.host ?? "localhost",
    port: config.port,
    log,
    // Probot needs an app id and a key to exist; in setup they are never used (probot#1512).
    Probot: Probot.defaults({ appId: 1, privateKey: "unused: no app credentials yet", log, baseUrl: config.githubApiUrl }),
  });
  await server.loadHandlerFactory(setupAppFactory({ host: server.host, port: server.port, log: log.child({ name: "setup" }) }));
  await server.load(appFn);
  await server.start();
  return server;
}

/**
 * Starts the server: with credentials, the app through Probot's `run()`; without, the setup flow
 * beside the app for local use. The environment is validated first; Probot and Sluice log
 * through one pino logger (stderr, LOG_FORMAT).
 */
export async function startServer(opts: Omit<SluiceAppOptions, "onReady"> & { logWrite?: (line: string) => void }): Promise<RunningServer> {
  const config = readServerConfig(opts.env, opts.cwd);
  const log = await createServerLog({ level: config.logLevel, format: config.logFormat, ...(opts.logWrite ? { write: opts.logWrite } : {}) });
  let sluice: Sluice | undefined;
  const appFn = sluiceApp({ ...opts, onReady: (s) => (sluice = s) });
  let server: Server;
  try {
    server = config.credentials ? await run(appFn, { env: opts.env, log }) : await startWithoutCredentials(appFn, config, log);
  } catch (e) {
    // The app was composed (its loops run) before the port was taken: stop it, or the process lingers.
    await (sluice as Sluice | undefined)?.stop();
    const code = (e as { code?: unknown })?.code;
    if (code === "EADDRINUSE" || code === "EACCES") throw new SluiceError("ENV_INVALID", e instanceof Error ? e.message : String(e), { port: config.port });
    throw e;
  }
  const url = `http://${server.host.includes(":") && !server.host.startsWith("[") ? `[${server.host}]` : server.host}:${server.port}`;
  return {
    server,
    ...(sluice ? { sluice } : {}),
    config,
    url,
    async stop() {
      await server.stop();
      await sluice?.stop();
    },
  };
}
