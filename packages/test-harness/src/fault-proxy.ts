/**
 * An HTTP proxy on 127.0.0.1 in front of a store emulator, injecting the faults a real store shows under
 * load: a burst of 503 answers (throttling), a connection reset in the middle of an object's body, and a
 * 403 for chosen requests (a permission the emulator cannot withhold, such as s3rver's, which has no IAM).
 * Every other request is forwarded unchanged.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, request, type Server } from "node:http";

export interface FaultProxy {
  readonly endpoint: string;
  readonly port: number;
  /** The next `count` requests (matching `match`) are answered 503 with `body`. */
  fail503(count: number, body?: string, match?: (req: IncomingMessage) => boolean): void;
  /** The next `count` responses with a body longer than `afterBytes` are cut there (socket destroyed). */
  resetMidBody(count: number, afterBytes: number, match?: (req: IncomingMessage) => boolean): void;
  /** Requests matching `match` are answered 403 with `body`, until cleared with `undefined`. */
  deny(match: ((req: IncomingMessage) => boolean) | undefined, body?: string): void;
  /** Faults injected so far, by kind. */
  readonly injected: { "503": number; reset: number; "403": number };
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  let fail = { count: 0, body: "", match: (_: IncomingMessage) => true };
  let reset = { count: 0, afterBytes: 0, match: (_: IncomingMessage) => true };
  let denied: { match: (req: IncomingMessage) => boolean; body: string } | undefined;
  const injected = { "503": 0, reset: 0, "403": 0 };
  const server: Server = createServer((req, res) => {
    if (denied?.match(req)) {
      injected["403"]++;
      req.resume();
      res.writeHead(403, { "content-type": "application/xml" }).end(denied.body);
      return;
    }
    if (fail.count > 0 && fail.match(req)) {
      fail.count--;
      injected["503"]++;
      req.resume();
      res.writeHead(503, { "content-type": "application/xml", "retry-after": "0" }).end(fail.body);
      return;
    }
    // Decided when the request comes (concurrent requests must not all take the last one).
    const cut = reset.count > 0 && reset.match(req);
    if (cut) reset.count--;
    const upstream = request(
      { host: target.host, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        const length = Number(up.headers["content-length"] ?? 0);
        if (cut && length > reset.afterBytes) {
          injected.reset++;
          res.writeHead(up.statusCode ?? 502, up.headers);
          let sent = 0;
          up.on("data", (chunk: Buffer) => {
            if (sent >= reset.afterBytes) return;
            const take = chunk.subarray(0, reset.afterBytes - sent);
            sent += take.length;
            res.write(take);
            if (sent >= reset.afterBytes) {
              up.destroy();
              res.socket?.destroy();
            }
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    injected,
    fail503(
      count,
      body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
      match = () => true,
    ) {
      fail = { count, body, match };
    },
    resetMidBody(count, afterBytes, match = () => true) {
      reset = { count, afterBytes, match };
    },
    deny(match, body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>") {
      denied = match ? { match, body } : undefined;
    },
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
