/**
 * The plan of a run: every connection with its simulated endpoints, identity, TLS parameters, virtual timing
 * and application exchanges, drawn from the seed before any socket opens. Executing a plan is deterministic
 * up to what the platform randomises (TLS key material) and how the kernel chunks reads.
 */
import { createHash } from "node:crypto";
import type { Endpoint, TcpOptionsSeen } from "@cloudtap/tap-format";
import {
  type DnsQueryPlan,
  type HttpExchangePlan,
  planDnsQueries,
  planHttpExchanges,
} from "./exchange-plan.js";
import type { Device, Population, Service, User } from "./population.js";
import type { Prng } from "./prng.js";
import { type CertificateKind, TLS_SUITES, type TlsSuiteProfile } from "./tls-profiles.js";

export type ApplicationProtocol = "https-h1" | "https-h2" | "http" | "dns";

/** How a TCP connection ends. */
export type CloseMode = "client-fin" | "server-fin" | "client-rst";

export type KeyExchangeGroup = "X25519" | "P-256" | "P-384";

export interface TlsPlan {
  readonly suite: TlsSuiteProfile;
  readonly certificate: CertificateKind;
  readonly group: KeyExchangeGroup;
  readonly sni: string;
  /** ALPN protocols the client offers; undefined when it sends no ALPN extension. */
  readonly alpnOffer?: readonly string[];
  /** CBC suites only: whether encrypt-then-MAC (RFC 7366) may be negotiated. */
  readonly encryptThenMac: boolean;
}

export interface TimingPlan {
  /** Round trip between the tapper (next to the client) and the server. */
  readonly rttNs: number;
  /** Server time between a request's last byte and the response's first byte. */
  readonly serverTimeNs: number;
  /** Client time between receiving something and answering it (TLS flights, next request). */
  readonly clientTurnaroundNs: number;
  /** Time one byte takes on the wire at the connection's bandwidth. */
  readonly nsPerByte: number;
}

export interface ConnectionPlan {
  readonly index: number;
  readonly connId: string;
  readonly startNs: bigint;
  readonly protocol: ApplicationProtocol;
  readonly user: User;
  readonly device: Device;
  readonly service: Service;
  readonly ipVersion: 4 | 6;
  readonly client: Endpoint;
  readonly server: Endpoint;
  /**
   * The tapper that records the connection, and for a few long connections a second one that takes over after
   * `tapperSwitchAtBytes` (a gateway failover): both write records with the same connection id.
   */
  readonly tapperIds: readonly string[];
  readonly tapperSwitchAtBytes?: number;
  readonly attributes: Readonly<Record<string, string>>;
  /** TCP connections only. */
  readonly tcp?: TcpOptionsSeen;
  /** https-h1 and https-h2 only. */
  readonly tls?: TlsPlan;
  readonly timing: TimingPlan;
  readonly exchanges: readonly HttpExchangePlan[];
  readonly dnsQueries: readonly DnsQueryPlan[];
  readonly closeMode: CloseMode;
  /** The HTTP Date header of every response on this connection (virtual time, 1 s resolution). */
  readonly httpDate: string;
}

export interface PlanOptions {
  readonly connections: number;
  readonly startNs: bigint;
  readonly meanInterArrivalNs: number;
  readonly tapperIds: readonly string[];
  /**
   * Mixed into every connection id when given: runs of one seed at other clock starts (`--start`) land in
   * the same store without two connections sharing an id. Absent, the ids are the seed's alone.
   */
  readonly connIdSalt?: string;
}

/** The connection id drawn from the seed, or its salted hash (same length) when the run has a salt. */
function saltedConnId(drawn: string, salt: string | undefined): string {
  if (salt === undefined) return drawn;
  return createHash("sha256").update(`${salt}/${drawn}`).digest("hex").slice(0, drawn.length);
}

function pickProtocol(prng: Prng): ApplicationProtocol {
  return prng.weighted<ApplicationProtocol>([
    ["https-h1", 44],
    ["https-h2", 26],
    ["http", 12],
    ["dns", 18],
  ]);
}

function pickService(prng: Prng, population: Population, protocol: ApplicationProtocol): Service {
  if (protocol === "dns") return prng.pick(population.resolvers);
  if (protocol === "http") return prng.pick(population.services.filter((s) => s.kind === "http"));
  const https = population.services.filter((s) => s.kind === "https");
  const wantsH2 = protocol === "https-h2";
  // Services lean towards the protocol their clients usually negotiate, but any can speak both.
  return prng.weighted(https.map((s) => [s, s.prefersH2 === wantsH2 ? 3 : 1] as const));
}

function pickSuite(prng: Prng, protocol: ApplicationProtocol): TlsSuiteProfile {
  // HTTP/2 forbids the CBC suites (RFC 7540, section 9.2.2): browsers that speak it never offer them.
  const suites = protocol === "https-h2" ? TLS_SUITES.filter((s) => !s.cbc) : TLS_SUITES;
  return prng.weighted(suites.map((s) => [s, s.weight] as const));
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, v));
}

function tupleKey(client: Endpoint, server: Endpoint, transport: string): string {
  return `${transport} ${client.address} ${client.port} ${server.address} ${server.port}`;
}

/** Draws the plan of every connection of a run. */
export function planConnections(prng: Prng, population: Population, options: PlanOptions): ConnectionPlan[] {
  const plans: ConnectionPlan[] = [];
  const nextPort = new Map<Device, number>();
  const tuples = new Set<string>();
  const connIds = new Set<string>();
  let t = options.startNs;
  for (let index = 0; index < options.connections; index++) {
    const p = prng.fork(`connection/${index}`);
    if (index > 0) t += BigInt(Math.max(1000, Math.round(p.exponential(options.meanInterArrivalNs))));
    const protocol = pickProtocol(p);
    const user = p.pick(population.users);
    const device = p.pick(user.devices);
    const service = pickService(p, population, protocol);
    const ipVersion: 4 | 6 = device.ipv6 !== undefined && p.chance(0.6) ? 6 : 4;
    const transport = protocol === "dns" ? "udp" : "tcp";

    // Ephemeral ports: each device hands them out in sequence from a random start, like the OS does.
    const [lo, hi] = device.portRange;
    let port = nextPort.get(device) ?? p.int(lo, hi);
    const server: Endpoint = { address: ipVersion === 6 ? service.ipv6 : service.ipv4, port: service.port };
    let client: Endpoint;
    for (;;) {
      port = port >= hi ? lo : port + 1;
      client = { address: ipVersion === 6 ? device.ipv6! : device.ipv4, port };
      if (!tuples.has(tupleKey(client, server, transport))) break;
    }
    nextPort.set(device, port + p.int(0, 3));
    tuples.add(tupleKey(client, server, transport));

    let connId = saltedConnId(p.hex(16), options.connIdSalt);
    while (connIds.has(connId)) connId = saltedConnId(p.hex(16), options.connIdSalt);
    connIds.add(connId);

    const rttNs = Math.round(clamp(p.logNormal(device.medianRttMs, 0.45), 0.8, 400) * 1e6);
    const timing: TimingPlan = {
      rttNs,
      serverTimeNs: Math.round(clamp(p.logNormal(2.5e6, 0.9), 1e5, 250e6)),
      clientTurnaroundNs: Math.round(clamp(p.logNormal(3e5, 0.6), 2e4, 20e6)),
      nsPerByte: 8e9 / clamp(device.bitsPerSecond * p.logNormal(1, 0.3), 2e6, 2e9),
    };

    let tcp: TcpOptionsSeen | undefined;
    if (transport === "tcp") {
      const serverMss = ipVersion === 6 ? p.pick([1440, 1440, 1380]) : p.pick([1460, 1460, 1400, 1380]);
      tcp = {
        clientMss: ipVersion === 6 ? device.tcp.mss - 20 : device.tcp.mss,
        serverMss,
        clientWindowScale: device.tcp.windowScale,
        serverWindowScale: p.pick([7, 8, 9, 10]),
        sackPermitted: device.tcp.sackPermitted && p.chance(0.97),
        timestamps: device.tcp.timestamps && p.chance(0.9),
        clientIsn: p.u32(),
        serverIsn: p.u32(),
      };
    }

    let tls: TlsPlan | undefined;
    if (protocol === "https-h1" || protocol === "https-h2") {
      const suite = pickSuite(p, protocol);
      const alpnOffer: readonly string[] | undefined =
        protocol === "https-h2"
          ? ["h2", "http/1.1"]
          : p.weighted<readonly string[] | undefined>([
              [["http/1.1"], 6],
              [undefined, 2],
            ]);
      const certificate = suite.certificate ?? p.pick<CertificateKind>(["rsa", "ecdsa"]);
      let group = p.weighted<KeyExchangeGroup>([
        ["X25519", 7],
        ["P-256", 2],
        ["P-384", 1],
      ]);
      // A TLS 1.2 client must list the curve of an ECDSA certificate (P-256) among its groups, and the server
      // then prefers P-256 over P-384.
      if (suite.version === "TLSv1.2" && certificate === "ecdsa" && group === "P-384") group = "P-256";
      tls = {
        suite,
        certificate,
        group,
        sni: service.host,
        ...(alpnOffer !== undefined ? { alpnOffer } : {}),
        encryptThenMac: suite.cbc && p.chance(0.5),
      };
    }

    const exchanges =
      protocol === "dns"
        ? []
        : planHttpExchanges(p.fork("exchanges"), service, {
            bodySeed: `${p.seedText}/body`,
            http2: protocol === "https-h2",
          });
    const dnsQueries =
      protocol === "dns"
        ? planDnsQueries(
            p.fork("dns"),
            population.services.map((s) => s.host),
            user.tenant.domain,
          )
        : [];

    const closeMode: CloseMode =
      transport === "udp"
        ? "client-fin"
        : p.weighted<CloseMode>([
            ["client-fin", 80],
            ["server-fin", protocol === "https-h2" ? 0 : 14],
            ["client-rst", 6],
          ]);

    // Failover: a few long connections move to the second tapper part-way through.
    const plannedBytes = exchanges.reduce(
      (n, e) => n + e.responseBody.length + (e.requestBody?.length ?? 0),
      0,
    );
    const primary = p.pick(options.tapperIds);
    const secondary = options.tapperIds.find((id) => id !== primary);
    const failover =
      transport === "tcp" && secondary !== undefined && plannedBytes >= 96 * 1024 && p.chance(0.25);

    plans.push({
      index,
      connId,
      startNs: t,
      protocol,
      user,
      device,
      service,
      ipVersion,
      client,
      server,
      tapperIds: failover ? [primary, secondary] : [primary],
      ...(failover ? { tapperSwitchAtBytes: Math.round(plannedBytes * p.float() * 0.8) + 4096 } : {}),
      attributes: {
        user: user.email,
        tenant: user.tenant.id,
        app: service.app,
        policy: p.pick(user.tenant.policies),
        device: device.id,
        "device.os": device.os,
        site: device.site,
        department: user.department,
      },
      ...(tcp !== undefined ? { tcp } : {}),
      ...(tls !== undefined ? { tls } : {}),
      timing,
      exchanges,
      dnsQueries,
      closeMode,
      httpDate: new Date(Number(t / 1_000_000n)).toUTCString(),
    });
  }
  return plans;
}
