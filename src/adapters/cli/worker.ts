/**
 * `sluice worker`: timers, retries, detached runs and the live release's schedules, with
 * `POST /callbacks/<token>` served on a local port (where local runs' callback URLs point), and
 * one log line per step transition, until SIGINT or SIGTERM.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { workerPort, type Local } from "../../app/local.js";
import { LinkSigner } from "../server/auth.js";
import { createRoutes } from "../server/routes.js";
import { createLogger } from "../logger.js";
import { localTime } from "./format.js";
import { createLocalScheduler, runLocalSchedules } from "../../app/local-schedules.js";
import { EXIT, paint, type Io, type Report } from "./output.js";
import { transitionLine } from "./runs.js";

/** Serves the server's callback route, and nothing else, on 127.0.0.1. */
async function serveCallbacks(local: Local, port: number, io: Io): Promise<Server | undefined> {
  const runtime = await local.runtime();
  const routes = createRoutes({
    runtime,
    store: local.store,
    publicUrl: local.publicUrl,
    // Only /callbacks/ is served here: no run page, so no link is ever signed or accepted.
    links: new LinkSigner(randomBytes(32)),
    logger: runtime.logger,
  });
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    const answer = path.startsWith("/callbacks/") ? routes(req, res) : Promise.resolve(false);
    answer
      .then((handled) => {
        if (handled) return;
        res.writeHead(404, { "content-type": "application/json; charset=utf-8" });
        res.end(JSON.stringify({ ok: false, error: { code: "NOT_FOUND", message: "sluice worker serves POST /callbacks/<token> only", details: {} } }) + "\n");
      })
      .catch((e: unknown) => {
        runtime.logger.error("callback request failed", { error: e instanceof Error ? e.message : String(e) });
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
  });
  return new Promise((resolve) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      // Another worker may serve them already: this one still runs timers and schedules.
      io.stderr(`warning: callbacks are not served by this worker: 127.0.0.1:${port} is not available (${e.code ?? e.message}); set SLUICE_WORKER_PORT (and SLUICE_PUBLIC_URL) to use another port\n`);
      resolve(undefined);
    });
    server.listen(port, "127.0.0.1", () => resolve(server));
  });
}

export async function workerCommand(local: Local, opts: { once: boolean; pollMs?: number }, io: Io): Promise<Report> {
  const rt = await local.runtime();
  if (opts.once) {
    let total = 0;
    for (let n = await rt.workOnce(); n > 0; n = await rt.workOnce()) total += n;
    return { kind: "Worker", ok: true, data: { worker: rt.workerId, advanced: total }, exitCode: EXIT.ok, human: `advanced ${total} run(s)` };
  }
  const port = workerPort(io.env);
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  const p = paint(io.colour);
  const stamp = (at: number) => p.dim(localTime(at).split(" ")[1] ?? "");
  const offLog = rt.onEvents((runId, events, state) => {
    for (const e of events) {
      const line = e.type === "run_completed" ? `run ${state.flow.name} ${e.status}${e.error ? `: ${e.error.code}: ${e.error.message}` : ""}` : transitionLine(e, state, io.colour);
      if (line) io.stderr(`${stamp(e.at)} ${runId} ${e.type === "run_completed" ? "" : `${state.flow.name} `}${line}\n`);
    }
  });
  const server = await serveCallbacks(local, port, io);
  const logger = createLogger(io.env.LOG_LEVEL);
  const scheduler = createLocalScheduler(local, rt, logger);
  io.stderr(`worker ${rt.workerId} started${server ? `; callbacks on ${local.publicUrl}/callbacks/<token>` : ""} (Ctrl-C stops it)\n`);

  const schedules = runLocalSchedules(scheduler, rt, logger, controller.signal);
  try {
    await rt.work(controller.signal, opts.pollMs);
    await schedules;
  } finally {
    // The worker loop may end of itself (its database unreachable past SLUICE_DB_DEADLINE): the
    // schedules stop with it.
    controller.abort();
    offLog();
    process.removeListener("SIGINT", stop);
    process.removeListener("SIGTERM", stop);
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }
  return { kind: "Worker", ok: true, data: { worker: rt.workerId }, exitCode: EXIT.ok, human: `worker ${rt.workerId} stopped` };
}
