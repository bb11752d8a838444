/**
 * The origin servers of the simulation, all on 127.0.0.1: one TLS server for every HTTPS connection (ALPN picks
 * HTTP/2 or HTTP/1.1, the client's offer picks the version and suite), one plain HTTP server, one DNS resolver.
 * A server finds the plan of a connection by its peer's loopback address (see LoopbackRegistry).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer as createTcpServer, type Socket, type Server as TcpServer } from "node:net";
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from "node:tls";
import type { ConnectionPlan } from "./connection-plan.js";
import { type DnsServer, startDnsServer } from "./dns.js";
import { serveHttp1 } from "./http1.js";
import { serveHttp2 } from "./http2-exchange.js";
import type { Service } from "./population.js";
import { serverCipherList } from "./tls-profiles.js";

/** The test certificates in testdata/ (see its README): RSA 2048 and ECDSA P-256 for the example domains. */
export interface TestCredentials {
  readonly rsaKey: Buffer;
  readonly rsaCert: Buffer;
  readonly ecdsaKey: Buffer;
  readonly ecdsaCert: Buffer;
}

export function loadTestCredentials(): TestCredentials {
  // Through the package's own export, so that a bundle (which moves this code) still finds the files.
  const file = (name: string) =>
    readFileSync(createRequire(import.meta.url).resolve(`@cloudtap/tapsim/testdata/${name}`));
  return {
    rsaKey: file("rsa-key.pem"),
    rsaCert: file("rsa-cert.pem"),
    ecdsaKey: file("ecdsa-key.pem"),
    ecdsaCert: file("ecdsa-cert.pem"),
  };
}

/** What a server needs to know about a connection it accepted. */
export interface ServerSideContext {
  readonly plan: ConnectionPlan;
  /** Called once when the server is done with the connection, with the error if it failed. */
  serverDone(error?: Error): void;
}

export type ServerLookup = (address: string | undefined) => ServerSideContext | undefined;

export interface TrafficServers {
  readonly tlsPort: number;
  readonly httpPort: number;
  readonly dnsPort: number;
  /** DNS queries the resolver could not parse or answer. */
  readonly dnsMalformed: number;
  close(): Promise<void>;
}

function isReset(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ECONNRESET" || code === "EPIPE";
}

/** Reports the outcome of serving once; a reset the plan asked for is not a failure. */
function report(ctx: ServerSideContext, outcome: Promise<void>): void {
  outcome.then(
    () => ctx.serverDone(),
    (err: unknown) => {
      if (ctx.plan.closeMode === "client-rst" && isReset(err)) ctx.serverDone();
      else ctx.serverDone(err instanceof Error ? err : new Error(String(err)));
    },
  );
}

async function listen(server: TcpServer | TlsServer): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("server has no port");
  return address.port;
}

function closeServer(server: TcpServer | TlsServer, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

export interface TrafficServerOptions {
  readonly lookup: ServerLookup;
  readonly services: readonly Service[];
  readonly credentials: TestCredentials;
}

export async function startTrafficServers(options: TrafficServerOptions): Promise<TrafficServers> {
  const { lookup, credentials } = options;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  const tlsServer = createTlsServer(
    {
      key: [{ pem: credentials.rsaKey }, { pem: credentials.ecdsaKey }],
      cert: [credentials.rsaCert, credentials.ecdsaCert],
      ALPNProtocols: ["h2", "http/1.1"],
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.3",
      ciphers: serverCipherList(),
    },
    (socket: TLSSocket) => {
      const ctx = lookup(socket.remoteAddress);
      if (!ctx) {
        socket.destroy();
        return;
      }
      if (socket.alpnProtocol === "h2") report(ctx, serveHttp2({ plan: ctx.plan, socket }));
      else report(ctx, serveHttp1({ plan: ctx.plan, socket }));
    },
  );
  tlsServer.on("connection", track);
  tlsServer.on("tlsClientError", (err, socket) => {
    const ctx = lookup(socket.remoteAddress);
    if (ctx) report(ctx, Promise.reject(err));
  });

  const httpServer = createTcpServer((socket) => {
    const ctx = lookup(socket.remoteAddress);
    if (!ctx) {
      socket.destroy();
      return;
    }
    track(socket);
    report(ctx, serveHttp1({ plan: ctx.plan, socket }));
  });

  let dns: DnsServer | undefined;
  try {
    const tlsPort = await listen(tlsServer);
    const httpPort = await listen(httpServer);
    dns = await startDnsServer([...options.services]);
    const dnsServer = dns;
    return {
      tlsPort,
      httpPort,
      dnsPort: dnsServer.port,
      get dnsMalformed() {
        return dnsServer.malformed;
      },
      close: async () => {
        await Promise.all([
          closeServer(tlsServer, sockets),
          closeServer(httpServer, sockets),
          dnsServer.close(),
        ]);
      },
    };
  } catch (err) {
    await Promise.allSettled([
      closeServer(tlsServer, sockets),
      closeServer(httpServer, sockets),
      dns?.close(),
    ]);
    throw err;
  }
}
