/**
 * The simulated world: tenants with users, their devices on corporate, branch and home networks, and the
 * services they reach. Every address here is one the records carry ("as seen leaving the user's host"), never
 * an address the simulator uses: clients sit in RFC 1918 space, IPv6 ULA (RFC 4193) or the IPv6 documentation
 * prefix; servers sit in the documentation ranges (RFC 5737: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24;
 * RFC 3849: 2001:db8::/32) under names in the reserved example domains (RFC 2606).
 */
import type { Prng } from "./prng.js";

export interface Tenant {
  readonly id: string;
  readonly domain: string;
  readonly policies: readonly string[];
  /** ULA /48 of the tenant's offices, e.g. "fd3c:91a2:7e04". */
  readonly ulaPrefix: string;
  /** Second octet of the tenant's 10.x.0.0/16 headquarters network. */
  readonly hqOctet: number;
}

export type SiteKind = "hq" | "branch" | "home";
export type OperatingSystem = "windows" | "macos" | "linux" | "ios" | "android";

export interface TcpProfile {
  readonly mss: number;
  readonly windowScale: number;
  readonly sackPermitted: boolean;
  readonly timestamps: boolean;
}

export interface Device {
  readonly id: string;
  readonly os: OperatingSystem;
  readonly site: SiteKind;
  readonly ipv4: string;
  /** Present for dual-stack devices. */
  readonly ipv6?: string;
  readonly tcp: TcpProfile;
  readonly userAgent: string;
  /** Ephemeral port range of the OS, inclusive. */
  readonly portRange: readonly [number, number];
  /** Link characteristics of the site: round trip to the servers and bandwidth. */
  readonly medianRttMs: number;
  readonly bitsPerSecond: number;
}

export interface User {
  readonly email: string;
  readonly tenant: Tenant;
  readonly department: string;
  readonly devices: readonly Device[];
}

export type ServiceKind = "https" | "http" | "dns";

/** What a service's responses look like; drives the exchange planner. */
export type ServiceProfile =
  | "web-app"
  | "api"
  | "files"
  | "cdn"
  | "telemetry"
  | "updates"
  | "ocsp"
  | "probe"
  | "dns";

export interface Service {
  readonly host: string;
  readonly app: string;
  readonly kind: ServiceKind;
  readonly profile: ServiceProfile;
  readonly port: number;
  readonly ipv4: string;
  readonly ipv6: string;
  /** Whether clients of this service usually negotiate HTTP/2. */
  readonly prefersH2: boolean;
}

export interface Population {
  readonly tenants: readonly Tenant[];
  readonly users: readonly User[];
  readonly services: readonly Service[];
  /** Resolvers (kind "dns"). */
  readonly resolvers: readonly Service[];
}

export interface PopulationOptions {
  /** Number of users; default: drawn between 40 and 80. */
  readonly users?: number;
}

const TENANTS = [
  { id: "acme-corp", domain: "acme.example" },
  { id: "globex", domain: "globex.example" },
  { id: "initech", domain: "initech.example" },
  { id: "umbrella-health", domain: "umbrella-health.example" },
] as const;

const POLICIES = [
  "corp-default-allow",
  "saas-inspect",
  "file-transfer-dlp",
  "developer-tools",
  "contractor-restricted",
  "exec-protect",
];

const DEPARTMENTS = ["engineering", "finance", "sales", "support", "legal", "it-ops", "marketing", "hr"];

const FIRST_NAMES = [
  "alice",
  "bruno",
  "chen",
  "dana",
  "emeka",
  "fatima",
  "gustav",
  "hana",
  "ivan",
  "jun",
  "kofi",
  "lena",
  "mateo",
  "nadia",
  "olga",
  "priya",
  "quentin",
  "rosa",
  "sven",
  "tariq",
  "uma",
  "victor",
  "wen",
  "ximena",
  "yusuf",
  "zoe",
  "aiko",
  "bilal",
  "carmen",
  "dmitri",
  "elif",
  "farid",
];
const LAST_NAMES = [
  "nguyen",
  "schmidt",
  "okafor",
  "garcia",
  "kowalski",
  "tanaka",
  "haddad",
  "johansson",
  "rossi",
  "patel",
  "dubois",
  "mendes",
  "novak",
  "sato",
  "moreau",
  "ivanova",
  "khan",
  "lindqvist",
  "oconnor",
  "fischer",
];

/** Services. Addresses are assigned from the documentation ranges when the population is built. */
const SERVICE_CATALOG: readonly Omit<Service, "ipv4" | "ipv6">[] = [
  { host: "mail.example.com", app: "webmail", kind: "https", profile: "web-app", port: 443, prefersH2: true },
  { host: "crm.example.com", app: "crm", kind: "https", profile: "web-app", port: 443, prefersH2: false },
  { host: "wiki.example.org", app: "wiki", kind: "https", profile: "web-app", port: 443, prefersH2: false },
  {
    host: "files.example.net",
    app: "file-sharing",
    kind: "https",
    profile: "files",
    port: 443,
    prefersH2: false,
  },
  {
    host: "git.example.com",
    app: "source-control",
    kind: "https",
    profile: "api",
    port: 8443,
    prefersH2: false,
  },
  { host: "chat.example.net", app: "team-chat", kind: "https", profile: "api", port: 443, prefersH2: true },
  { host: "api.example.com", app: "payments-api", kind: "https", profile: "api", port: 443, prefersH2: true },
  { host: "cdn.example.net", app: "cdn", kind: "https", profile: "cdn", port: 443, prefersH2: true },
  {
    host: "metrics.example.org",
    app: "telemetry",
    kind: "https",
    profile: "telemetry",
    port: 8443,
    prefersH2: false,
  },
  {
    host: "sso.example.com",
    app: "identity-provider",
    kind: "https",
    profile: "api",
    port: 443,
    prefersH2: true,
  },
  {
    host: "docs.example.org",
    app: "office-docs",
    kind: "https",
    profile: "web-app",
    port: 443,
    prefersH2: true,
  },
  {
    host: "updates.example.net",
    app: "software-update",
    kind: "http",
    profile: "updates",
    port: 80,
    prefersH2: false,
  },
  { host: "ocsp.example.org", app: "pki-ocsp", kind: "http", profile: "ocsp", port: 80, prefersH2: false },
  {
    host: "connectivity.example.com",
    app: "captive-check",
    kind: "http",
    profile: "probe",
    port: 80,
    prefersH2: false,
  },
];

const USER_AGENTS: Record<OperatingSystem, readonly string[]> = {
  windows: [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Microsoft-CryptoAPI/10.0",
  ],
  macos: [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  ],
  linux: ["curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1", "git/2.43.0"],
  ios: [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
  ],
  android: [
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
  ],
};

function tcpProfile(prng: Prng, os: OperatingSystem, site: SiteKind): TcpProfile {
  // Home links behind PPPoE or a VPN client clamp the MSS below the Ethernet 1460.
  const mss = site === "home" ? prng.pick([1452, 1460, 1400]) : prng.chance(0.1) ? 1380 : 1460;
  switch (os) {
    case "windows":
      return { mss, windowScale: 8, sackPermitted: true, timestamps: false };
    case "macos":
    case "ios":
      return { mss, windowScale: 6, sackPermitted: true, timestamps: true };
    case "linux":
    case "android":
      return { mss, windowScale: prng.pick([7, 7, 9]), sackPermitted: true, timestamps: true };
  }
}

function hextet(prng: Prng): string {
  return prng
    .u32()
    .toString(16)
    .slice(-4)
    .replace(/^0+(?=.)/, "");
}

function ulaPrefix(prng: Prng): string {
  // RFC 4193: fd00::/8 followed by a 40-bit random global id.
  const g = prng.hex(5);
  return `fd${g.slice(0, 2)}:${g.slice(2, 6)}:${g.slice(6, 10)}`.replace(/:0+(?=[0-9a-f])/g, ":");
}

/** Builds the population. The same stream gives the same population. */
export function createPopulation(prng: Prng, options: PopulationOptions = {}): Population {
  const tenantCount = prng.int(2, 3);
  const tenants: Tenant[] = prng
    .shuffled(TENANTS)
    .slice(0, tenantCount)
    .map((t, i) => ({
      id: t.id,
      domain: t.domain,
      policies: prng.shuffled(POLICIES).slice(0, prng.int(2, 4)),
      ulaPrefix: ulaPrefix(prng),
      hqOctet: 20 + i * 12 + prng.int(0, 9),
    }));

  const services: Service[] = SERVICE_CATALOG.map((s, i) => {
    const block = ["192.0.2", "198.51.100", "203.0.113"][i % 3]!;
    return {
      ...s,
      ipv4: `${block}.${10 + i * 7 + prng.int(0, 5)}`,
      ipv6: `2001:db8:${(0x100 + i).toString(16)}::${hextet(prng)}`,
    };
  });
  const resolvers: Service[] = [
    {
      host: "resolver1.example.net",
      app: "dns",
      kind: "dns",
      profile: "dns",
      port: 53,
      ipv4: "198.51.100.53",
      ipv6: "2001:db8:53::53",
      prefersH2: false,
    },
    {
      host: "resolver2.example.net",
      app: "dns",
      kind: "dns",
      profile: "dns",
      port: 53,
      ipv4: "203.0.113.53",
      ipv6: "2001:db8:53::1:53",
      prefersH2: false,
    },
  ];

  const userCount = options.users ?? prng.int(40, 80);
  const users: User[] = [];
  const emails = new Set<string>();
  let deviceSerial = prng.int(100, 900);
  for (let u = 0; u < userCount; u++) {
    const tenant = prng.pick(tenants);
    let email: string;
    do {
      email = `${prng.pick(FIRST_NAMES)}.${prng.pick(LAST_NAMES)}@${tenant.domain}`;
      if (emails.has(email)) email = email.replace("@", `${prng.int(2, 99)}@`);
    } while (emails.has(email));
    emails.add(email);
    const homeOctet = prng.pick([0, 1, 1, 1, 2, 10, 178]);
    const devices: Device[] = [];
    const deviceCount = prng.weighted<number>([
      [1, 5],
      [2, 4],
      [3, 1],
    ]);
    for (let d = 0; d < deviceCount; d++) {
      const os: OperatingSystem =
        d === 0
          ? prng.weighted<OperatingSystem>([
              ["windows", 5],
              ["macos", 3],
              ["linux", 2],
            ])
          : prng.weighted<OperatingSystem>([
              ["ios", 3],
              ["android", 2],
              ["macos", 1],
            ]);
      const site = prng.weighted<SiteKind>([
        ["hq", 5],
        ["branch", 2],
        ["home", 3],
      ]);
      let ipv4: string;
      let ipv6: string | undefined;
      const iid = `${hextet(prng)}:${hextet(prng)}:${hextet(prng)}:${hextet(prng)}`;
      if (site === "hq") {
        ipv4 = `10.${tenant.hqOctet}.${prng.int(1, 250)}.${prng.int(2, 254)}`;
        if (prng.chance(0.45)) ipv6 = `${tenant.ulaPrefix}:${(prng.int(1, 0x40)).toString(16)}:${iid}`;
      } else if (site === "branch") {
        ipv4 = `172.${16 + tenants.indexOf(tenant)}.${prng.int(10, 40)}.${prng.int(2, 254)}`;
        if (prng.chance(0.35)) ipv6 = `2001:db8:ca${tenants.indexOf(tenant)}:${prng.int(1, 9)}:${iid}`;
      } else {
        ipv4 = `192.168.${homeOctet}.${prng.int(2, 254)}`;
        if (prng.chance(0.3))
          ipv6 = `2001:db8:${(0x8000 + prng.int(0, 0x7fff)).toString(16)}:${hextet(prng)}:${iid}`;
      }
      const osCode = { windows: "WIN", macos: "MAC", linux: "LNX", ios: "IOS", android: "AND" }[os];
      deviceSerial += prng.int(1, 17);
      const device: Device = {
        id: `${tenant.id.slice(0, 4).toUpperCase()}-${osCode}-${String(deviceSerial).padStart(5, "0")}`,
        os,
        site,
        ipv4,
        ...(ipv6 !== undefined ? { ipv6 } : {}),
        tcp: tcpProfile(prng, os, site),
        userAgent: prng.pick(USER_AGENTS[os]),
        portRange: os === "linux" || os === "android" ? [32768, 60999] : [49152, 65535],
        medianRttMs: { hq: 14, branch: 28, home: 38 }[site] * prng.logNormal(1, 0.35),
        bitsPerSecond: { hq: 400e6, branch: 150e6, home: 60e6 }[site] * prng.logNormal(1, 0.4),
      };
      devices.push(device);
    }
    users.push({ email, tenant, department: prng.pick(DEPARTMENTS), devices });
  }
  return { tenants, users, services, resolvers };
}
