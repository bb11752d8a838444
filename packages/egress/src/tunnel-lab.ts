/**
 * Test harness (exported under @cloudtap/egress/internal, never used by package code): a private network
 * namespace joined to the root namespace by a veth pair, where kernel VXLAN and GENEVE devices decapsulate
 * what cloudtap sends and tcpdump records it. Needs root (CAP_NET_ADMIN), iproute2 and tcpdump.
 *
 *   root ns: <veth>a 10.231.N.1/30  <---->  ns: <veth>b 10.231.N.2/30, vx0 (VXLAN), gn0 (GENEVE), ...
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function ip(...args: string[]): string {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    const e = err as { stderr?: string; message: string; code?: string };
    if (e.code === "ENOENT")
      throw new Error("ip (iproute2) is not on PATH: the tunnel tests need it", { cause: err });
    throw new Error(`ip ${args.join(" ")}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

export interface PacketCapture {
  readonly file: string;
  /**
   * Waits until the capture file has stopped growing (tcpdump has taken every packet the kernel had for
   * it: on SIGINT it leaves packets still in its ring buffer unread), then stops tcpdump.
   */
  stop(): Promise<void>;
}

export interface TunnelLab {
  readonly ns: string;
  /** The root namespace's end: what the tunnels are sent from. */
  readonly rootAddress: string;
  /** The namespace's end: where the tunnels are sent to. */
  readonly nsAddress: string;
  /** The namespace's veth interface (where the outer packets arrive). */
  readonly nsInterface: string;
  /** A kernel VXLAN device in the namespace, up. */
  addVxlan(name: string, vni: number, port?: number): void;
  /**
   * A kernel GENEVE device in the namespace, up, taking tunnels from the root end. False when this kernel
   * has no GENEVE support (CONFIG_GENEVE unset): the caller decides what to judge with instead.
   */
  addGeneve(name: string, vni: number, port?: number): boolean;
  /**
   * A UDP socket in the namespace on `port` that takes and discards datagrams (a receiver for tunnels no
   * device decapsulates, so that the namespace does not answer them with ICMP port unreachable).
   */
  listenUdp(port: number): Promise<void>;
  /** tcpdump on an interface of the namespace, into `file` (resolves once it listens). */
  capture(iface: string, file: string, filter?: readonly string[]): Promise<PacketCapture>;
  /** Removes the namespace (and so the veth pair); the root end's route goes with it. */
  remove(): void;
  /** Stops captures and removes everything; safe to call twice. */
  destroy(): Promise<void>;
}

/** The third octet of a 10.231.x.0/30 that no interface of the root namespace uses yet. */
function freeSubnet(): number {
  const used = ip("-4", "-o", "addr", "show");
  for (let tries = 0; tries < 256; tries++) {
    const x = randomBytes(1)[0]!;
    if (!used.includes(`10.231.${x}.`)) return x;
  }
  throw new Error("no free 10.231.x.0/30 for a test namespace");
}

export function createTunnelLab(): TunnelLab {
  const tag = randomBytes(3).toString("hex");
  const ns = `ct-egress-${tag}`;
  // Interface names have at most 15 characters.
  const rootEnd = `cte${tag}a`;
  const nsEnd = `cte${tag}b`;
  const subnet = freeSubnet();
  const rootAddress = `10.231.${subnet}.1`;
  const nsAddress = `10.231.${subnet}.2`;
  const captures: ChildProcess[] = [];
  let removed = false;

  ip("netns", "add", ns);
  try {
    ip("link", "add", rootEnd, "type", "veth", "peer", "name", nsEnd);
    ip("link", "set", nsEnd, "netns", ns);
    ip("addr", "add", `${rootAddress}/30`, "dev", rootEnd);
    // UDP GSO sends are segmented before the root end, as by a NIC without segmentation offload: a veth
    // would otherwise carry the 64 KB aggregates into the namespace, and captures there would show them.
    ip("link", "set", "dev", rootEnd, "gso_max_segs", "1");
    ip("link", "set", rootEnd, "up");
    ip("-n", ns, "addr", "add", `${nsAddress}/30`, "dev", nsEnd);
    ip("-n", ns, "link", "set", nsEnd, "up");
    ip("-n", ns, "link", "set", "lo", "up");
  } catch (err) {
    try {
      ip("netns", "del", ns);
      ip("link", "del", rootEnd);
    } catch {
      // partly created: what is left goes with the namespace
    }
    throw err;
  }

  const remove = () => {
    if (removed) return;
    removed = true;
    try {
      ip("netns", "del", ns);
    } catch {
      // already gone
    }
    try {
      ip("link", "del", rootEnd);
    } catch {
      // deleted with the namespace (its peer was inside)
    }
  };

  return {
    ns,
    rootAddress,
    nsAddress,
    nsInterface: nsEnd,
    addVxlan(name, vni, port = 4789) {
      ip(
        "-n",
        ns,
        "link",
        "add",
        name,
        "type",
        "vxlan",
        "id",
        String(vni),
        "dstport",
        String(port),
        "local",
        nsAddress,
        "nolearning",
      );
      ip("-n", ns, "link", "set", name, "up");
    },
    addGeneve(name, vni, port = 6081) {
      try {
        ip(
          "-n",
          ns,
          "link",
          "add",
          name,
          "type",
          "geneve",
          "id",
          String(vni),
          "remote",
          rootAddress,
          "dstport",
          String(port),
        );
      } catch (err) {
        if (/Unknown device type|not supported/i.test((err as Error).message)) return false;
        throw err;
      }
      ip("-n", ns, "link", "set", name, "up");
      return true;
    },
    async listenUdp(port) {
      const script = `require("node:dgram").createSocket("udp4").on("message", () => {}).bind(${port}, "${nsAddress}", () => console.log("ready"));`;
      const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      captures.push(child);
      await new Promise<void>((resolve, reject) => {
        child.on("error", reject);
        child.stdout?.on("data", () => resolve());
        child.on("exit", (code) => reject(new Error(`UDP listener in ${ns} exited ${code}`)));
      });
    },
    async capture(iface, file, filter = []) {
      const child = spawn(
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
          "65536",
          "-i",
          iface,
          "-w",
          file,
          ...filter,
        ],
        {
          stdio: ["ignore", "ignore", "pipe"],
        },
      );
      captures.push(child);
      let stderr = "";
      const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
      await new Promise<void>((resolve, reject) => {
        child.on("error", (err) => reject(new Error(`tcpdump could not start: ${err.message}`)));
        child.stderr?.on("data", (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes("listening on")) resolve();
        });
        child.on("exit", (code) => reject(new Error(`tcpdump exited ${code}: ${stderr}`)));
      });
      return {
        file,
        async stop() {
          let size = sizeOf(file);
          for (let quiet = 0, waited = 0; quiet < 3 && waited < 10_000; waited += 100) {
            await new Promise((r) => setTimeout(r, 100));
            const now = sizeOf(file);
            quiet = now === size ? quiet + 1 : 0;
            size = now;
          }
          if (child.exitCode === null) child.kill("SIGINT");
          await exited;
          if (process.env["EGRESS_LAB_DEBUG"]) process.stderr.write(stderr);
        },
      };
    },
    remove,
    async destroy() {
      for (const c of captures) if (c.exitCode === null) c.kill("SIGKILL");
      remove();
    },
  };
}
