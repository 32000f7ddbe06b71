/**
 * The load of bench/intake.ts, in a process of its own: signed GitHub deliveries POSTed at a
 * fixed rate (an open loop: a slow answer does not slow the sending), each with its own
 * delivery id and comment id, signed like GitHub signs them. Latency is from the moment each
 * delivery was due to be sent to the moment its answer arrived, so a queue in this process or
 * in the server counts against the server (no coordinated omission).
 *
 *   node bench/intake-load.mjs '<json: {url, secret, event, payload, rate, seconds}>'
 *
 * Prints one JSON line: {sent, ok, failed, statuses, latencies (ms, sorted)}.
 */
import { createHmac, randomUUID } from "node:crypto";
import { Agent, request } from "node:http";

const { url, secret, event, payload, rate, seconds } = JSON.parse(process.argv[2]);
const agent = new Agent({ keepAlive: true, maxSockets: 512 });
const target = new URL(url);
const total = Math.round(rate * seconds);
const latencies = [];
const statuses = {};
let ok = 0;
let failed = 0;
let done = 0;

function send(i, due) {
  const p = structuredClone(payload);
  p.comment.id = 900_000_000 + i;
  const body = JSON.stringify(p);
  const signature = `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
  const req = request(
    {
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: "POST",
      agent,
      headers: {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        "user-agent": "GitHub-Hookshot/bench",
        "x-github-event": event,
        "x-github-delivery": randomUUID(),
        "x-hub-signature-256": signature,
      },
    },
    (res) => {
      res.resume();
      res.on("end", () => {
        latencies.push(performance.now() - due);
        statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        if (res.statusCode >= 200 && res.statusCode < 300) ok++;
        else failed++;
        finish();
      });
    },
  );
  req.on("error", () => {
    failed++;
    finish();
  });
  req.end(body);
}

function finish() {
  if (++done < total) return;
  latencies.sort((a, b) => a - b);
  process.stdout.write(`${JSON.stringify({ sent: total, ok, failed, statuses, latencies })}\n`);
  agent.destroy();
}

const start = performance.now() + 50;
let i = 0;
function tick() {
  const now = performance.now();
  while (i < total && start + (i * 1000) / rate <= now) {
    send(i, start + (i * 1000) / rate);
    i++;
  }
  if (i < total) setTimeout(tick, Math.max(0, start + (i * 1000) / rate - performance.now()));
}
setTimeout(tick, 50);
