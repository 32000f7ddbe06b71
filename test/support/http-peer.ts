/**
 * A small HTTP server on loopback for executor tests: it records every request it receives
 * and answers through the handler the test gives it. Stop it in afterAll.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface PeerRequest {
  method: string;
  /** Path and query, as sent. */
  path: string;
  url: URL;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json(): any;
}

export type PeerHandler = (req: PeerRequest, res: ServerResponse) => void | Promise<void>;

export interface HttpPeer {
  /** `http://127.0.0.1:<port>` */
  origin: string;
  host: string;
  port: number;
  requests: PeerRequest[];
  /** Resolves with the next request the peer receives (before it answers). */
  nextRequest(): Promise<PeerRequest>;
  stop(): Promise<void>;
}

export async function startHttpPeer(handler: PeerHandler, host = "127.0.0.1"): Promise<HttpPeer> {
  const requests: PeerRequest[] = [];
  let waiters: ((r: PeerRequest) => void)[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const text = body.toString("utf8");
      const rec: PeerRequest = {
        method: req.method ?? "",
        path: req.url ?? "/",
        url: new URL(req.url ?? "/", `http://${req.headers.host ?? host}`),
        headers: req.headers,
        body,
        text,
        json: () => JSON.parse(text),
      };
      requests.push(rec);
      const w = waiters;
      waiters = [];
      for (const f of w) f(rec);
      Promise.resolve(handler(rec, res)).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
        res.end(String(err));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    origin: `http://${hostPart}:${port}`,
    host,
    port,
    requests,
    nextRequest: () => new Promise((resolve) => waiters.push(resolve)),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Answers with a JSON body. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Answers with a text body. */
export function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers });
  res.end(body);
}
