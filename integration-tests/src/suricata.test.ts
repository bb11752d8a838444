/**
 * Suricata 7 as the NDR (issue 10): it reads the cleartext output of `cloudtap stitch` on the simulator's
 * store with `stream.reassembly.depth: 0` (whole streams) and reports every HTTP/1.1 request and every
 * HTTP/2 stream the manifest holds, per connection (client address and port, method, path), and no stream
 * anomaly (eve.json, and no reassembly gap in its counters). The same over VXLAN: the cleartext VNI sent to a
 * kernel vxlan device in a network namespace, captured there by tcpdump, read by Suricata.
 * Needs Suricata (scripts/bootstrap.sh installs it from bookworm-backports); skipped with a message without
 * it. The VXLAN part needs root, iproute2 and tcpdump.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cloudtap } from "./cloudtap-cli.js";

function suricataVersion(): string | undefined {
  const r = spawnSync("suricata", ["-V"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const VERSION = suricataVersion();
const SKIP = VERSION
  ? false
  : "suricata is not installed: run ./scripts/bootstrap.sh (it installs Suricata 7 from bookworm-backports)";

interface ManifestView {
  readonly connections: readonly {
    readonly connId: string;
    readonly transport: "tcp" | "udp";
    readonly protocol: string;
    readonly client: { readonly address: string; readonly port: number };
    readonly tls: unknown;
    readonly http: readonly { readonly method: string; readonly path: string }[];
  }[];
}

interface EveEvent {
  readonly event_type: string;
  readonly src_ip?: string;
  readonly src_port?: number;
  readonly http?: {
    readonly url?: string;
    readonly http_method?: string;
    readonly protocol?: string;
    readonly version?: string;
  };
  readonly anomaly?: { readonly type?: string; readonly event?: string };
  readonly stats?: { readonly tcp?: Record<string, number> };
}

/** Suricata on a capture file, every log in `logDir`; its eve.json events. */
function suricata(capture: string, logDir: string): EveEvent[] {
  mkdirSync(logDir, { recursive: true });
  const r = spawnSync(
    "suricata",
    [
      "-r",
      capture,
      "-l",
      logDir,
      "-k",
      "none",
      "--runmode",
      "single",
      "-S",
      "/dev/null",
      "--set",
      "stream.reassembly.depth=0",
    ],
    { encoding: "utf8", timeout: 300_000 },
  );
  assert.equal(r.status, 0, `suricata failed: ${r.stderr}${r.stdout}`);
  return readFileSync(join(logDir, "eve.json"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as EveEvent);
}

/** An address as Suricata writes it: IPv4 as is, IPv6 in full (eight groups of four hex digits). */
function fullAddress(address: string): string {
  if (!address.includes(":")) return address;
  const [head, tail] = address.split("::") as [string, string | undefined];
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : Array(8 - left.length - right.length).fill("0");
  return [...left, ...zeros, ...right].map((g) => g.padStart(4, "0").toLowerCase()).join(":");
}

/** Requests per connection ("address port"), as "METHOD path" lists, sorted. */
function requestsOf(events: readonly EveEvent[]): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  for (const e of events) {
    if (e.event_type !== "http" || !e.http?.url || !e.http.http_method) continue;
    const key = `${fullAddress(e.src_ip ?? "")} ${e.src_port}`;
    const list = seen.get(key) ?? [];
    list.push(`${e.http.http_method} ${e.http.url}`);
    seen.set(key, list);
  }
  for (const list of seen.values()) list.sort();
  return seen;
}

function assertSuricataSawEverything(
  manifest: ManifestView,
  events: readonly EveEvent[],
  what: string,
): void {
  const seen = requestsOf(events);
  let h1 = 0;
  let h2 = 0;
  for (const c of manifest.connections) {
    if (c.transport !== "tcp" || c.http.length === 0) continue;
    const expected = c.http.map((x) => `${x.method} ${x.path}`).sort();
    const got = seen.get(`${fullAddress(c.client.address)} ${c.client.port}`) ?? [];
    assert.deepEqual(got, expected, `${what}: requests of ${c.protocol} connection ${c.connId}`);
    if (c.protocol === "https-h2") h2 += expected.length;
    else h1 += expected.length;
  }
  assert.ok(h1 > 0 && h2 > 0, `${what}: the store has HTTP/1.1 (${h1}) and HTTP/2 (${h2}) requests`);
  const anomalies = events.filter((e) => e.event_type === "anomaly" && e.anomaly?.type === "stream");
  assert.deepEqual(
    anomalies.map((e) => e.anomaly),
    [],
    `${what}: no stream anomaly`,
  );
  const stats = events.filter((e) => e.event_type === "stats").at(-1)?.stats?.tcp ?? {};
  assert.equal(stats["reassembly_gap"] ?? 0, 0, `${what}: no reassembly gap`);
  assert.equal(stats["invalid_checksum"] ?? 0, 0, `${what}: no invalid checksum`);
}

function ip(...args: string[]): void {
  execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

describe("suricata 7 reads the cleartext output (issue 10)", { skip: SKIP }, () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-suricata-"));
  const store = join(dir, "store");
  let manifest: ManifestView;
  after(() => rmSync(dir, { recursive: true, force: true }));

  before(() => {
    const r = cloudtap(
      "simulate",
      "--out",
      store,
      "--connections",
      "60",
      "--seed",
      "5",
      "--blob-size",
      "64KiB",
    );
    assert.equal(r.status, 0, r.stderr);
    const mdir = join(store, "manifest");
    const [name] = execFileSync("ls", [mdir], { encoding: "utf8" }).trim().split("\n");
    manifest = JSON.parse(readFileSync(join(mdir, name!), "utf8")) as ManifestView;
  });

  it(`suricata - ${VERSION ?? "suricata"}: every HTTP/1.1 request and HTTP/2 stream of a cleartext pcap, no stream anomaly`, () => {
    const file = join(dir, "cleartext.pcap");
    const r = cloudtap("stitch", "--source", store, "--variant", "cleartext", "--pcap", file);
    assert.equal(r.status, 0, r.stderr);
    assertSuricataSawEverything(manifest, suricata(file, join(dir, "log-file")), "cleartext pcap");
  });

  it("suricata - the same over VXLAN: the cleartext VNI from a kernel vxlan device in a namespace", async (t) => {
    if (process.getuid?.() !== 0) {
      t.skip("needs root for a network namespace");
      return;
    }
    const tag = randomBytes(3).toString("hex");
    const ns = `ct-suri-${tag}`;
    const rootEnd = `cts${tag}a`;
    const nsEnd = `cts${tag}b`;
    const sub = 1 + (randomBytes(1)[0]! % 250);
    const rootAddress = `10.232.${sub}.1`;
    const nsAddress = `10.232.${sub}.2`;
    const capture = join(dir, "vxlan.pcap");
    let tcpdump: ChildProcess | undefined;
    ip("netns", "add", ns);
    try {
      ip("link", "add", rootEnd, "type", "veth", "peer", "name", nsEnd);
      ip("link", "set", nsEnd, "netns", ns);
      ip("addr", "add", `${rootAddress}/30`, "dev", rootEnd);
      ip("link", "set", "dev", rootEnd, "gso_max_segs", "1");
      ip("link", "set", rootEnd, "up");
      ip("-n", ns, "addr", "add", `${nsAddress}/30`, "dev", nsEnd);
      ip("-n", ns, "link", "set", nsEnd, "up");
      ip("-n", ns, "link", "set", "lo", "up");
      // The cleartext VNI's device: what a sensor listening on that VNI sees.
      ip(
        "-n",
        ns,
        "link",
        "add",
        "vxclear",
        "type",
        "vxlan",
        "id",
        "42",
        "dstport",
        "4789",
        "local",
        nsAddress,
        "nolearning",
      );
      ip("-n", ns, "link", "set", "vxclear", "up");
      tcpdump = spawn(
        "ip",
        [
          "netns",
          "exec",
          ns,
          "tcpdump",
          "-n",
          "-U",
          "--immediate-mode",
          "-B",
          "131072",
          "-i",
          "vxclear",
          "-w",
          capture,
        ],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      const proc = tcpdump;
      await new Promise<void>((resolve, reject) => {
        let text = "";
        proc.stderr?.on("data", (d: Buffer) => {
          text += d.toString();
          if (text.includes("listening on")) resolve();
        });
        proc.on("exit", (code) => reject(new Error(`tcpdump exited ${code}: ${text}`)));
      });
      const r = cloudtap(
        "stitch",
        "--source",
        store,
        "--variant",
        "cleartext",
        "--vxlan",
        `${nsAddress}:4789,vni=41,cleartext-vni=42`,
      );
      assert.equal(r.status, 0, r.stderr);
      // tcpdump has taken every packet once the file stops growing.
      let size = sizeOf(capture);
      for (let quiet = 0, waited = 0; quiet < 5 && waited < 20_000; waited += 200) {
        await new Promise((res) => setTimeout(res, 200));
        const now = sizeOf(capture);
        quiet = now === size ? quiet + 1 : 0;
        size = now;
      }
      const exited = new Promise<void>((res) => proc.on("exit", () => res()));
      proc.kill("SIGINT");
      await exited;
      tcpdump = undefined;
      assertSuricataSawEverything(
        manifest,
        suricata(capture, join(dir, "log-vxlan")),
        "cleartext VNI over VXLAN",
      );
    } finally {
      if (tcpdump && tcpdump.exitCode === null) tcpdump.kill("SIGKILL");
      try {
        ip("netns", "del", ns);
      } catch {
        // already gone
      }
      try {
        ip("link", "del", rootEnd);
      } catch {
        // went with the namespace (its peer was inside)
      }
    }
  });
});
