/** `sluice worker`: timers, retries, callbacks and detached runs, until SIGINT or SIGTERM. */
import type { Local } from "../../app/local.js";
import { EXIT, type Io, type Report } from "./output.js";

export async function workerCommand(local: Local, opts: { once: boolean; pollMs?: number }, io: Io): Promise<Report> {
  const rt = local.runtime;
  if (opts.once) {
    let total = 0;
    for (let n = await rt.workOnce(); n > 0; n = await rt.workOnce()) total += n;
    return { kind: "Worker", ok: true, data: { worker: rt.workerId, advanced: total }, exitCode: EXIT.ok, human: `advanced ${total} run(s)` };
  }
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  io.stderr(`worker ${rt.workerId} started (Ctrl-C stops it)\n`);
  await rt.work(controller.signal, opts.pollMs);
  return { kind: "Worker", ok: true, data: { worker: rt.workerId }, exitCode: EXIT.ok, human: `worker ${rt.workerId} stopped` };
}
