/**
 * Runs one planned connection end to end: registers it under a fresh loopback address, drives the client
 * through the relay to the server, and returns what each side and the tapper saw.
 */
import { constants as cryptoConstants } from "node:crypto";
import { connect as connectTcp, type Socket } from "node:net";
import { connect as connectTls, type TLSSocket } from "node:tls";
import { ByteTally, type StreamDigest } from "./byte-tally.js";
import type { ConnectionPlan } from "./connection-plan.js";
import { ConnectionTap, type TapCloseInfo, type TapSink } from "./connection-tap.js";
import { type DnsQueryResult, runDnsClient } from "./dns.js";
import {
  ConnectionFailedError,
  ConnectionTimeoutError,
  ConsistencyViolationError,
  isSimulationError,
} from "./errors.js";
import { type HttpExchangeResult, runHttp1Client } from "./http1.js";
import { runHttp2Client } from "./http2-exchange.js";
import type { LoopbackRegistry } from "./loopback-registry.js";
import { createPassthroughDuplex } from "./passthrough-duplex.js";
import type { RelayTarget, UdpRelay } from "./tap-relay.js";
import type { ServerSideContext, TestCredentials } from "./traffic-servers.js";

/** The registry entry of a live connection: what the relay and the servers look up by address. */
export interface ConnectionEntry extends RelayTarget, ServerSideContext {}

/** Tracks the virtual clocks of live connections (the blob recorder's watermark). */
export interface TapClockRegistry extends TapSink {
  register(tap: ConnectionTap): void;
  unregister(tap: ConnectionTap): void;
}

export interface ConnectionEnvironment {
  readonly registry: LoopbackRegistry<ConnectionEntry>;
  readonly clocks: TapClockRegistry;
  readonly credentials: TestCredentials;
  readonly tcpRelayPort: number;
  readonly udpRelay: UdpRelay;
  readonly tlsPort: number;
  readonly httpPort: number;
  readonly dnsPort: number;
  /** Real-time budget of one connection. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface NegotiatedTls {
  readonly version: string;
  readonly suite: string;
  readonly alpn: string | null;
  readonly group: string;
  readonly certificate: "rsa" | "ecdsa";
  readonly clientRandom: string;
  /** CBC suites only: whether encrypt-then-MAC was allowed by the client (and so negotiated: the server allows it). */
  readonly encryptThenMac?: boolean;
}

export interface ConnectionOutcome {
  readonly plan: ConnectionPlan;
  readonly tappers: readonly string[];
  readonly raw: { readonly c2s: StreamDigest; readonly s2c: StreamDigest };
  /** The application bytes each side wrote into TLS (for plain protocols: into the socket). */
  readonly app: { readonly c2s: StreamDigest; readonly s2c: StreamDigest };
  readonly datagrams?: { readonly c2s: number; readonly s2c: number };
  readonly close: TapCloseInfo;
  readonly tls?: NegotiatedTls;
  /** NSS key log lines of the connection (TLS only), without line ends. */
  readonly keyLogLines: readonly string[];
  readonly http: readonly HttpExchangeResult[];
  readonly dns: readonly DnsQueryResult[];
}

interface Deferred {
  readonly promise: Promise<void>;
  settle(error?: Error): void;
}

function deferred(): Deferred {
  let settle!: (error?: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    let done = false;
    settle = (error?: Error) => {
      if (done) return;
      done = true;
      if (error) reject(error);
      else resolve();
    };
  });
  promise.catch(() => {});
  return { promise, settle };
}

const SIGALGS = {
  rsa: "rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512:rsa_pkcs1_sha256:rsa_pkcs1_sha384",
  ecdsa: "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384",
} as const;

function connectRaw(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp({ host: "127.0.0.1", port, localAddress });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

async function startTls(
  plan: ConnectionPlan,
  raw: Socket,
  env: ConnectionEnvironment,
  keyLog: string[],
): Promise<TLSSocket> {
  const tls = plan.tls!;
  const socket = connectTls({
    socket: createPassthroughDuplex(raw),
    servername: tls.sni,
    ca: [env.credentials.rsaCert, env.credentials.ecdsaCert],
    minVersion: tls.suite.version,
    maxVersion: tls.suite.version,
    ciphers: tls.suite.openssl,
    // In TLS 1.2 the supported groups also bound the curve of an ECDSA certificate (P-256 here), so such a client
    // lists P-256 after X25519; the server prefers X25519.
    ecdhCurve:
      tls.suite.version === "TLSv1.2" && tls.certificate === "ecdsa" && tls.group === "X25519"
        ? "X25519:P-256"
        : tls.group,
    // In TLS 1.2 the suite names the certificate; in TLS 1.3 the signature algorithms offered choose it.
    ...(tls.suite.version === "TLSv1.3" ? { sigalgs: SIGALGS[tls.certificate] } : {}),
    ...(tls.alpnOffer ? { ALPNProtocols: [...tls.alpnOffer] } : {}),
    ...(tls.suite.cbc && !tls.encryptThenMac
      ? { secureOptions: cryptoConstants.SSL_OP_NO_ENCRYPT_THEN_MAC }
      : {}),
  });
  socket.on("keylog", (line: Buffer) => keyLog.push(line.toString("latin1").trimEnd()));
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.once("secureConnect", () => {
      socket.off("error", reject);
      resolve();
    });
  });
  return socket;
}

function checkTls(plan: ConnectionPlan, socket: TLSSocket, keyLog: readonly string[]): NegotiatedTls {
  const tls = plan.tls!;
  const version = socket.getProtocol() ?? "none";
  const suite = socket.getCipher().standardName;
  const alpn = socket.alpnProtocol || null;
  const wantAlpn = plan.protocol === "https-h2" ? "h2" : tls.alpnOffer ? "http/1.1" : null;
  const cn = String((socket.getPeerCertificate().subject as { CN?: unknown } | undefined)?.CN ?? "");
  const certificate = cn.includes("ECDSA") ? "ecdsa" : "rsa";
  const info = socket.getEphemeralKeyInfo() as { name?: string };
  const group = { prime256v1: "P-256", secp384r1: "P-384" }[info.name ?? ""] ?? info.name ?? "";
  const got = `${version} ${suite} alpn=${alpn} cert=${certificate} group=${group}`;
  const planned = `${tls.suite.version} ${tls.suite.iana} alpn=${wantAlpn} cert=${tls.certificate} group=${tls.group}`;
  if (got !== planned) throw new ConnectionFailedError(plan.index, `negotiated ${got}, planned ${planned}`);
  const clientRandom = keyLog[0]?.split(" ")[1];
  if (clientRandom === undefined || !/^[0-9a-f]{64}$/i.test(clientRandom)) {
    throw new ConnectionFailedError(plan.index, "no key log line with a client random after the handshake");
  }
  return {
    version,
    suite,
    alpn,
    group,
    certificate,
    clientRandom: clientRandom.toLowerCase(),
    ...(tls.suite.cbc ? { encryptThenMac: tls.encryptThenMac } : {}),
  };
}

/**
 * The client's own count of what it sent and received against the relay's count of the wire: equal without
 * TLS, and with TLS the wire carries more than the application wrote in each direction.
 */
function checkConsistency(
  plan: ConnectionPlan,
  app: { readonly c2s: StreamDigest; readonly s2c: StreamDigest },
  tap: ConnectionTap,
): void {
  for (const dir of ["c2s", "s2c"] as const) {
    const raw = tap.raw[dir].digest();
    const ok = plan.tls
      ? raw.length > app[dir].length
      : raw.length === app[dir].length && raw.sha256 === app[dir].sha256;
    if (!ok) {
      throw new ConsistencyViolationError(
        plan.index,
        `${dir}: the client counted ${app[dir].length} application bytes, the tapper ${raw.length} on the wire`,
      );
    }
  }
}

/** Runs `plan` and resolves when the client, the relay and the server are all done with it. */
export async function runConnection(
  plan: ConnectionPlan,
  env: ConnectionEnvironment,
): Promise<ConnectionOutcome> {
  const tap = new ConnectionTap(plan, env.clocks);
  const relayDone = deferred();
  const serverDone = deferred();
  const udp = plan.protocol === "dns";
  const address = env.registry.acquire((loopbackAddress) => ({
    plan,
    tap,
    loopbackAddress,
    upstreamPort: udp ? env.dnsPort : plan.protocol === "http" ? env.httpPort : env.tlsPort,
    settle: relayDone.settle,
    serverDone: serverDone.settle,
  }));
  env.clocks.register(tap);

  const sent = new ByteTally();
  const received = new ByteTally();
  const keyLog: string[] = [];
  /** Client sockets, outermost last: torn down from the outside in. */
  const sockets: Socket[] = [];
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const teardown = () => {
    for (const s of [...sockets].reverse()) s.destroy();
    env.udpRelay.endFlow(address);
  };
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(env.signal?.reason ?? new Error("aborted"));
    if (env.signal?.aborted) onAbort();
    else env.signal?.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});

  const work = async (): Promise<Omit<ConnectionOutcome, "close" | "raw" | "tappers" | "datagrams">> => {
    if (udp) {
      const dns = await runDnsClient({
        plan,
        tap,
        loopbackAddress: address,
        relayPort: env.udpRelay.port,
        sent,
        received,
        answerTimeoutMs: env.timeoutMs,
        ...(env.signal ? { signal: env.signal } : {}),
      });
      env.udpRelay.endFlow(address);
      serverDone.settle();
      return { plan, app: { c2s: sent.digest(), s2c: received.digest() }, keyLogLines: [], http: [], dns };
    }
    const raw = await connectRaw(env.tcpRelayPort, address);
    sockets.push(raw);
    const reset = () => raw.resetAndDestroy();
    if (plan.protocol === "http") {
      const http = await runHttp1Client({ plan, socket: raw, tap, sent, received, reset });
      return { plan, app: { c2s: sent.digest(), s2c: received.digest() }, keyLogLines: [], http, dns: [] };
    }
    const socket = await startTls(plan, raw, env, keyLog);
    sockets.push(socket);
    const tls = checkTls(plan, socket, keyLog);
    const http =
      plan.protocol === "https-h2"
        ? await runHttp2Client({ plan, socket, tap, sent, received, reset })
        : await runHttp1Client({ plan, socket, tap, sent, received, reset });
    return {
      plan,
      app: { c2s: sent.digest(), s2c: received.digest() },
      tls,
      keyLogLines: keyLog,
      http,
      dns: [],
    };
  };

  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ConnectionTimeoutError(plan.index, env.timeoutMs)), env.timeoutMs);
    });
    const result = await Promise.race([
      (async () => {
        const r = await work();
        await Promise.all([relayDone.promise, serverDone.promise]);
        return r;
      })(),
      timeout,
      aborted,
    ]);
    const close = tap.closed;
    if (!close) throw new ConnectionFailedError(plan.index, "the relay finished without closing the tap");
    checkConsistency(plan, result.app, tap);
    return {
      ...result,
      tappers: [...tap.tappersUsed],
      raw: { c2s: tap.raw.c2s.digest(), s2c: tap.raw.s2c.digest() },
      ...(udp ? { datagrams: { ...tap.datagrams } } : {}),
      close,
    };
  } catch (err) {
    teardown();
    if (env.signal?.aborted) throw env.signal.reason;
    if (isSimulationError(err)) throw err;
    throw new ConnectionFailedError(
      plan.index,
      `${plan.protocol} to ${plan.service.host} failed: ${String(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    clearTimeout(timer);
    if (onAbort) env.signal?.removeEventListener("abort", onAbort);
    env.registry.release(address);
    env.clocks.unregister(tap);
  }
}
