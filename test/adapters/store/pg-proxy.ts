/**
 * A TCP proxy between a PostgreSQL client and a real server, on loopback, that reads the wire
 * protocol's message framing as it forwards: it counts the client's round trips (a Sync or a
 * simple Query each) and can cut a connection right after the server answered a chosen
 * statement, so the client never hears that it committed.
 */
import { createServer, connect, type Server, type Socket } from "node:net";

export interface PgProxy {
  /** The proxied server's URL: the real one's with the proxy's port. */
  url: string;
  /** Round trips the clients made so far (Sync and Query messages). */
  roundTrips(): number;
  /**
   * The next time a client sends a message whose bytes contain `marker`, the connection is cut
   * as soon as the server's next ReadyForQuery arrives (the statement ran, and committed unless
   * a transaction is open), before the client receives any of the answer. Resolves once cut.
   */
  cutAfter(marker: string): Promise<void>;
  stop(): Promise<void>;
}

/** Splits a stream into protocol messages: [type byte][int32 length incl. itself][body]; the first client message has no type byte. */
function framer(onMessage: (type: string, whole: Buffer) => void, startup: boolean): (chunk: Buffer) => Buffer[] {
  let pending = Buffer.alloc(0);
  let first = startup;
  return (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      const head = first ? 0 : 1;
      if (pending.length < head + 4) break;
      const len = pending.readInt32BE(head);
      if (pending.length < head + len) break;
      const whole = pending.subarray(0, head + len);
      pending = pending.subarray(head + len);
      onMessage(first ? "" : String.fromCharCode(whole[0]!), whole);
      // An SSLRequest is followed by another startup message.
      if (!(first && len === 8 && whole.readInt32BE(4) === 80877103)) first = false;
      out.push(whole);
    }
    return out;
  };
}

export async function startPgProxy(target: string): Promise<PgProxy> {
  const real = new URL(target);
  let trips = 0;
  let armed: { marker: string; cut: () => void } | undefined;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(real.port), real.hostname);
    sockets.add(client);
    sockets.add(upstream);
    let cutting: (() => void) | undefined;
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", drop);
    upstream.on("error", drop);
    client.on("close", drop);
    upstream.on("close", drop);
    const fromClient = framer((type, whole) => {
      if (type === "S" || type === "Q") trips++;
      if (armed && whole.includes(armed.marker)) {
        cutting = armed.cut;
        armed = undefined;
      }
    }, true);
    client.on("data", (chunk: Buffer) => {
      for (const m of fromClient(chunk)) upstream.write(m);
    });
    // A client sends nothing more before the server's ReadyForQuery: once the marked message is
    // sent, everything the server says answers it, and none of that answer is passed on.
    const fromServer = framer((type) => {
      if (type === "Z" && cutting) {
        const done = cutting;
        cutting = undefined;
        drop();
        done();
      }
    }, false);
    upstream.on("data", (chunk: Buffer) => {
      const marked = cutting !== undefined;
      const messages = fromServer(chunk);
      if (!marked) for (const m of messages) client.write(m);
    });
    client.on("close", () => sockets.delete(client));
    upstream.on("close", () => sockets.delete(upstream));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  const url = new URL(target);
  url.port = String(port);
  return {
    url: url.toString(),
    roundTrips: () => trips,
    cutAfter(marker) {
      return new Promise<void>((resolve) => {
        armed = { marker, cut: resolve };
      });
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
