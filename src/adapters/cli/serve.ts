/**
 * `sluice serve` (and `npm start`): the GitHub App server, with the worker, the inbox, the
 * scheduler and the check-run reporter in one process, until SIGINT or SIGTERM. Without
 * APP_ID and PRIVATE_KEY it serves local use (the API, run pages, callbacks, the worker) beside
 * Probot's setup flow at /setup, which registers the app from app.yml.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { startServer } from "../../app/server.js";
import { EXIT, errorReport, type Io, type Report } from "./output.js";

export async function serveCommand(io: Io): Promise<Report> {
  // Probot's run() exits the process on SIGINT; this command stops the loops and the store first.
  const before = new Set(process.listeners("SIGINT"));
  const running = await startServer({ env: io.env, cwd: io.cwd });
  for (const l of process.listeners("SIGINT")) if (!before.has(l)) process.removeListener("SIGINT", l);
  const { config, url } = running;
  if (!config.credentials) {
    const manifest = existsSync(join(io.cwd, "app.yml"));
    io.stderr(
      `sluice serve: listening on ${url} for local use (the API, run pages, callbacks); no GitHub App credentials (APP_ID, PRIVATE_KEY):` +
        ` open ${url}/setup to register the app on GitHub${process.env.GHE_HOST ? ` Enterprise (${process.env.GHE_HOST})` : ""};` +
        ` its id, key and webhook secret are written to .env, then start sluice serve again.\n` +
        (manifest ? "" : `note: there is no app.yml in ${io.cwd}: copy Sluice's app.yml here first, so the app is registered with the permissions and events Sluice uses.\n`),
    );
  } else {
    io.stderr(`sluice serve: listening on ${url} (public URL ${config.publicUrl}, GitHub API ${config.githubApiUrl}); Ctrl-C stops it\n`);
  }
  // Until a signal, or until the store gives up (the database stayed out of reach past
  // SLUICE_DB_DEADLINE): then the server stops and exits 5 rather than serving without a store.
  const stopped = await Promise.race([
    new Promise<undefined>((resolve) => {
      process.once("SIGINT", () => resolve(undefined));
      process.once("SIGTERM", () => resolve(undefined));
    }),
    ...(running.sluice ? [running.sluice.failed] : []),
  ]);
  await running.stop();
  if (stopped) return errorReport(stopped);
  return {
    kind: "Server",
    ok: true,
    data: { url, public_url: config.publicUrl, mode: config.credentials ? "app" : "local", stopped: true },
    exitCode: EXIT.ok,
    human: "sluice serve stopped",
  };
}
