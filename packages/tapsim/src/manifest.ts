/**
 * The manifest of a simulation run: the ground truth the consumers' tests compare against. Per connection it
 * names the simulated 5-tuple, identity, protocol and TLS parameters, and the length and SHA-256 of each
 * direction's bytes twice: as they crossed the wire (`raw`, what the blobs hold) and as the applications wrote
 * them into TLS (`app`, what decryption must give back; for plain HTTP and DNS the same as `raw`).
 *
 * Runs with the same seed and options give the same manifest except for the fields listed in
 * NON_DETERMINISTIC_FIELDS; `maskNonDeterministic` blanks exactly those.
 */
import { CloseInitiator, CloseReason } from "@cloudtap/tap-format";
import type { AppliedGap, AppliedTruncation } from "./blob-recorder.js";
import type { StreamDigest } from "./byte-tally.js";
import type { ApplicationProtocol } from "./connection-plan.js";
import type { ConnectionOutcome } from "./connection-runner.js";
import type { DnsQueryResult } from "./dns.js";
import type { HttpExchangeResult } from "./http1.js";

export const MANIFEST_FORMAT = "cloudtap.tapsim.manifest/v1";

export interface ManifestEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface ManifestDirection {
  /** The bytes as they left the sending host (TCP payload, or the UDP payloads concatenated). */
  readonly raw: StreamDigest;
  /** The application bytes written into TLS by the sender (equal to `raw` without TLS). */
  readonly app: StreamDigest;
  /** UDP only. */
  readonly datagrams?: number;
}

export interface ManifestTls {
  readonly version: string;
  /** IANA name of the negotiated suite. */
  readonly suite: string;
  readonly alpn: string | null;
  /** Key exchange group: "X25519", "P-256" or "P-384". */
  readonly group: string;
  readonly certificate: "rsa" | "ecdsa";
  /** 64 hex digits: the key log lines of this connection carry it. */
  readonly clientRandom: string;
  /** CBC suites only: whether encrypt-then-MAC (RFC 7366) was negotiated. */
  readonly encryptThenMac?: boolean;
}

export interface ManifestTcpOptions {
  readonly clientMss: number;
  readonly serverMss: number;
  readonly clientWindowScale: number;
  readonly serverWindowScale: number;
  readonly sackPermitted: boolean;
  readonly timestamps: boolean;
  readonly clientIsn: number;
  readonly serverIsn: number;
}

export interface ManifestConnection {
  readonly index: number;
  /** 32 hex digits, as in the CTAP records. */
  readonly connId: string;
  /** Unix ns, as a decimal string: the conn-open record's time. */
  readonly startNs: string;
  /** Tapper ids that recorded the connection; a second one took over part-way (failover). */
  readonly tappers: readonly string[];
  readonly transport: "tcp" | "udp";
  readonly ipVersion: 4 | 6;
  readonly client: ManifestEndpoint;
  readonly server: ManifestEndpoint;
  readonly protocol: ApplicationProtocol;
  readonly serverName: string;
  readonly sni: string | null;
  readonly tls: ManifestTls | null;
  readonly attributes: Readonly<Record<string, string>>;
  readonly tcp: ManifestTcpOptions | null;
  readonly close: {
    readonly reason: "fin" | "rst" | "timeout" | "tapper-stop";
    readonly initiator: "client" | "server" | "unknown";
    readonly timestampNs: string;
  };
  readonly c2s: ManifestDirection;
  readonly s2c: ManifestDirection;
  readonly http: readonly HttpExchangeResult[];
  readonly dns: readonly DnsQueryResult[];
}

export interface ManifestBlob {
  readonly key: string;
  readonly tapperId: string;
  readonly sequence: string;
  readonly startNs: string;
  readonly endNs: string;
  readonly records: number;
  readonly bytes: number;
  readonly duplicateOf?: string;
}

export interface ManifestKeyLog {
  readonly key: string;
  readonly tapperId: string;
  readonly connections: number;
  readonly lines: number;
}

export interface FaultFlags {
  readonly duplicateBlobs: boolean;
  readonly shuffle: boolean;
  readonly gap: boolean;
  readonly truncateLast: boolean;
  readonly lateKeys: boolean;
}

export interface AppliedFaults {
  readonly requested: FaultFlags;
  /** duplicateBlobs: each second copy and the blob it copies. */
  readonly duplicateBlobs?: readonly { readonly key: string; readonly duplicateOf: string }[];
  readonly shuffle?: { readonly movedRecords: number; readonly swappedPairs: number };
  /** gap: the dropped data record. */
  readonly gap?: AppliedGap;
  readonly truncateLast?: AppliedTruncation;
  /** lateKeys: key logs were written after every data blob, under key times from this one on. */
  readonly lateKeys?: { readonly keyTimeNs: string };
}

export interface NonDeterministicField {
  /** Dotted path; `[]` steps into every element of an array. */
  readonly path: string;
  /** Only for connections of these protocols (paths under `connections[]`). */
  readonly protocols?: readonly ApplicationProtocol[];
  readonly reason: string;
}

export interface SimulationManifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly runId: string;
  readonly seed: string;
  readonly generator: "@cloudtap/tapsim";
  readonly parameters: {
    readonly connections: number;
    readonly blobSize: number;
    readonly blobAgeNs: string;
    readonly startNs: string;
    readonly meanInterArrivalNs: number;
    readonly prefix: string;
    readonly tapperIds: readonly string[];
    readonly compression: "none" | "gzip";
  };
  readonly population: {
    readonly tenants: readonly string[];
    readonly users: number;
    readonly devices: number;
  };
  readonly faults: AppliedFaults;
  readonly nonDeterministic: readonly NonDeterministicField[];
  readonly blobs: { readonly data: readonly ManifestBlob[]; readonly keyLogs: readonly ManifestKeyLog[] };
  readonly connections: readonly ManifestConnection[];
}

const TLS: readonly ApplicationProtocol[] = ["https-h1", "https-h2"];

export const NON_DETERMINISTIC_FIELDS: readonly NonDeterministicField[] = [
  { path: "connections[].tls.clientRandom", reason: "each handshake draws a fresh client random" },
  {
    path: "connections[].c2s.raw",
    protocols: TLS,
    reason: "TLS records carry fresh key shares, randoms and ciphertext; ECDSA signatures vary in length",
  },
  { path: "connections[].s2c.raw", protocols: TLS, reason: "as c2s.raw" },
  {
    path: "connections[].close.timestampNs",
    reason: "virtual time advances per chunk the relay reads, and read boundaries depend on the kernel",
  },
  { path: "blobs", reason: "record and blob boundaries depend on read chunking and on completion order" },
  { path: "faults.duplicateBlobs", reason: "names blobs" },
  { path: "faults.shuffle", reason: "counts records, whose boundaries vary" },
  { path: "faults.gap.offset", reason: "the dropped record starts where a read chunk started" },
  { path: "faults.gap.length", reason: "as faults.gap.offset" },
  { path: "faults.truncateLast", reason: "names the last blob written" },
  { path: "faults.lateKeys", reason: "follows the end time of the last blob" },
];

function maskPath(
  node: unknown,
  steps: readonly string[],
  keep: (element: unknown) => boolean,
  depth: number,
): void {
  if (node === null || typeof node !== "object" || steps.length === 0) return;
  const [head, ...rest] = steps as [string, ...string[]];
  const many = head.endsWith("[]");
  const name = many ? head.slice(0, -2) : head;
  const record = node as Record<string, unknown>;
  if (!(name in record)) return;
  if (many) {
    const list = record[name];
    if (!Array.isArray(list)) return;
    for (const element of list) if (depth > 0 || keep(element)) maskPath(element, rest, keep, depth + 1);
    return;
  }
  if (rest.length === 0) record[name] = null;
  else maskPath(record[name], rest, keep, depth + 1);
}

/** A deep copy of `manifest` with every field of NON_DETERMINISTIC_FIELDS set to null. */
export function maskNonDeterministic(manifest: SimulationManifest): unknown {
  const copy = JSON.parse(JSON.stringify(manifest)) as unknown;
  for (const field of NON_DETERMINISTIC_FIELDS) {
    const protocols = field.protocols;
    const keep = (element: unknown) =>
      protocols === undefined ||
      protocols.includes((element as { protocol?: ApplicationProtocol }).protocol!);
    maskPath(copy, field.path.split("."), keep, 0);
  }
  return copy;
}

const REASONS: Record<number, ManifestConnection["close"]["reason"]> = {
  [CloseReason.Fin]: "fin",
  [CloseReason.Rst]: "rst",
  [CloseReason.Timeout]: "timeout",
  [CloseReason.TapperStop]: "tapper-stop",
};
const INITIATORS: Record<number, ManifestConnection["close"]["initiator"]> = {
  [CloseInitiator.Client]: "client",
  [CloseInitiator.Server]: "server",
  [CloseInitiator.Unknown]: "unknown",
};

/** The manifest entry of one finished connection. */
export function manifestConnection(outcome: ConnectionOutcome): ManifestConnection {
  const { plan } = outcome;
  const tcp = plan.tcp;
  const direction = (d: "c2s" | "s2c"): ManifestDirection => ({
    raw: outcome.raw[d],
    app: outcome.app[d],
    ...(outcome.datagrams ? { datagrams: outcome.datagrams[d] } : {}),
  });
  return {
    index: plan.index,
    connId: plan.connId,
    startNs: plan.startNs.toString(),
    tappers: outcome.tappers,
    transport: plan.protocol === "dns" ? "udp" : "tcp",
    ipVersion: plan.ipVersion,
    client: { address: plan.client.address, port: plan.client.port },
    server: { address: plan.server.address, port: plan.server.port },
    protocol: plan.protocol,
    serverName: plan.service.host,
    sni: plan.tls?.sni ?? null,
    tls: outcome.tls
      ? {
          version: outcome.tls.version,
          suite: outcome.tls.suite,
          alpn: outcome.tls.alpn,
          group: outcome.tls.group,
          certificate: outcome.tls.certificate,
          clientRandom: outcome.tls.clientRandom,
          ...(outcome.tls.encryptThenMac !== undefined ? { encryptThenMac: outcome.tls.encryptThenMac } : {}),
        }
      : null,
    attributes: plan.attributes,
    tcp: tcp
      ? {
          clientMss: tcp.clientMss ?? 0,
          serverMss: tcp.serverMss ?? 0,
          clientWindowScale: tcp.clientWindowScale ?? 0,
          serverWindowScale: tcp.serverWindowScale ?? 0,
          sackPermitted: tcp.sackPermitted ?? false,
          timestamps: tcp.timestamps ?? false,
          clientIsn: tcp.clientIsn ?? 0,
          serverIsn: tcp.serverIsn ?? 0,
        }
      : null,
    close: {
      reason: REASONS[outcome.close.reason] ?? "fin",
      initiator: INITIATORS[outcome.close.initiator] ?? "unknown",
      timestampNs: outcome.close.timestampNs.toString(),
    },
    c2s: direction("c2s"),
    s2c: direction("s2c"),
    http: outcome.http,
    dns: outcome.dns,
  };
}
