/**
 * The node adapter that sends tunnel datagrams: one connected UDP socket per target and source-port slot
 * (the kernel adds the outer IP header and the Ethernet header of the path). A flow always leaves through
 * the socket of its slot, so both directions of a connection share one outer 5-tuple.
 *
 * Two mechanisms, the same contract:
 * - "sendmmsg": the native addon (native/sendmmsg.c, built at install when a compiler is there) hands a
 *   whole batch to the kernel per socket in one sendmmsg(2) call, grouping runs of equal-size datagrams
 *   into UDP GSO super-datagrams where the kernel supports it;
 * - "dgram": node:dgram, one send per datagram (about 3.5 us each), the fallback everywhere.
 *
 * Connected sockets learn of ICMP errors (port unreachable, no route): the next send on that socket reports
 * ECONNREFUSED, ENETUNREACH, ... That is counted per target and code; sending goes on. The native sender also
 * reads the ICMP reports themselves from the sockets' error queues (`unreachable`).
 */
import { createSocket, type Socket } from "node:dgram";
import { lookup } from "node:dns/promises";
import type { DatagramBatch, DatagramTransport, TransportTargetStats } from "./datagram-batch.js";
import { emptyTransportStats } from "./datagram-batch.js";
import { EgressError, EgressErrorCode } from "./errors.js";
import { addressFamily, type ExportPolicy, resolveExportPolicy } from "./export-policy.js";
import { loadNativeSender, type NativeSender } from "./native-sender.js";

export const DEFAULT_SOURCE_PORT_SLOTS = 16;

export interface UdpTarget {
  /** An IP literal. */
  readonly address: string;
  readonly port: number;
}

export interface UdpTransportOptions {
  readonly targets: readonly UdpTarget[];
  /** Sockets (outer source ports) per target; default 16. */
  readonly slots?: number;
  /**
   * Slot i binds source port `sourcePortBase + i` (shared by all targets); default: ports the kernel picks.
   * A fixed range lets a firewall in front of the NDR name the tunnel's source ports.
   */
  readonly sourcePortBase?: number;
  /** Local address to send from (per family); default the kernel's choice for the route. */
  readonly bindAddress?: { readonly v4?: string; readonly v6?: string };
  /** SO_SNDBUF of each socket; default the system's. */
  readonly sendBufferBytes?: number;
  /** "auto" (default): the native sendmmsg path when it was built, else dgram; "dgram": never native. */
  readonly mechanism?: "auto" | "dgram" | "sendmmsg";
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : "EUNKNOWN";
}

function checkOptions(o: UdpTransportOptions): number {
  const slots = o.slots ?? DEFAULT_SOURCE_PORT_SLOTS;
  if (!Number.isInteger(slots) || slots < 1 || slots > 1024) {
    throw new EgressError(EgressErrorCode.BadOption, `slots ${slots} is not an integer in 1..1024`);
  }
  if (o.sourcePortBase !== undefined) {
    if (!Number.isInteger(o.sourcePortBase) || o.sourcePortBase < 1 || o.sourcePortBase + slots - 1 > 65535) {
      throw new EgressError(
        EgressErrorCode.BadOption,
        `source ports ${o.sourcePortBase}..${o.sourcePortBase + slots - 1} are not within 1..65535`,
      );
    }
  }
  for (const t of o.targets) {
    if (addressFamily(t.address) === undefined) {
      throw new EgressError(
        EgressErrorCode.BadTarget,
        `"${t.address}" is not an IP address (resolve host names first)`,
      );
    }
  }
  return slots;
}

class DgramTransport implements DatagramTransport {
  readonly mechanism = "dgram";
  private readonly counters: TransportTargetStats[];
  /** Read once: a closed socket has no address. */
  private readonly ports: readonly (readonly number[])[];

  constructor(
    readonly slots: number,
    private readonly sockets: readonly (readonly Socket[])[],
  ) {
    this.counters = sockets.map(() => emptyTransportStats());
    this.ports = sockets.map((list) => list.map((s) => s.address().port));
    for (const [t, list] of sockets.entries()) {
      for (const s of list) s.on("error", (err) => this.refused(t, err));
    }
  }

  private refused(target: number, err: unknown): void {
    const st = this.counters[target]!;
    const code = errorCode(err);
    st.errors[code] = (st.errors[code] ?? 0) + 1;
    st.lastError = `${code}: ${(err as Error).message}`;
  }

  send(batch: DatagramBatch, from: number, to: number): Promise<void> {
    const target = batch.target;
    const list = this.sockets[target]!;
    const st = this.counters[target]!;
    let remaining = to - from;
    return new Promise((resolve) => {
      const done = (err: Error | null, bytes?: number) => {
        if (err) this.refused(target, err);
        else {
          st.datagrams++;
          st.bytes += bytes ?? 0;
        }
        if (--remaining === 0) resolve();
      };
      for (let i = from; i < to; i++) {
        const socket = list[batch.slots[i]!];
        if (socket === undefined) {
          throw new EgressError(
            EgressErrorCode.Misuse,
            `datagram ${i} names slot ${batch.slots[i]} of ${list.length}`,
          );
        }
        socket.send(batch.bytes, batch.offsets[i]!, batch.lengths[i]!, done);
      }
    });
  }

  stats(target: number): TransportTargetStats {
    return this.counters[target]!;
  }

  sourcePorts(target: number): readonly number[] {
    return this.ports[target]!;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.sockets.flat().map(
        (s) =>
          new Promise<void>((resolve) => {
            try {
              s.close(() => resolve());
            } catch {
              resolve(); // already closed
            }
          }),
      ),
    );
  }
}

class NativeTransport implements DatagramTransport {
  readonly mechanism = "sendmmsg";
  private readonly counters: TransportTargetStats[];
  private closed = false;

  constructor(
    readonly slots: number,
    private readonly native: NativeSender,
    /** File descriptors per target and slot. */
    private readonly fds: readonly (readonly number[])[],
    private readonly ports: readonly (readonly number[])[],
  ) {
    this.counters = fds.map(() => emptyTransportStats());
  }

  send(batch: DatagramBatch, from: number, to: number): void {
    if (this.closed) return;
    const st = this.counters[batch.target]!;
    const r = this.native.sendBatch(
      this.fds[batch.target]!,
      batch.bytes,
      batch.offsets,
      batch.lengths,
      batch.slots,
      from,
      to,
    );
    st.datagrams += r.sent;
    st.bytes += r.bytes;
    for (const [code, n] of Object.entries(r.unreachable ?? {}))
      st.unreachable[code] = (st.unreachable[code] ?? 0) + n;
    for (const [code, n] of Object.entries(r.errors ?? {})) {
      st.errors[code] = (st.errors[code] ?? 0) + n;
      st.lastError = `${code}: ${r.lastErrorMessage ?? code}`;
    }
  }

  stats(target: number): TransportTargetStats {
    return this.counters[target]!;
  }

  sourcePorts(target: number): readonly number[] {
    return this.ports[target]!;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const fd of this.fds.flat()) this.native.close(fd);
  }
}

async function openDgram(o: UdpTransportOptions, slots: number): Promise<DgramTransport> {
  const sockets: Socket[][] = [];
  try {
    for (const t of o.targets) {
      const v6 = addressFamily(t.address) === 6;
      const list: Socket[] = [];
      sockets.push(list);
      for (let slot = 0; slot < slots; slot++) {
        const s = createSocket({
          type: v6 ? "udp6" : "udp4",
          reuseAddr: o.sourcePortBase !== undefined,
          ...(o.sendBufferBytes === undefined ? {} : { sendBufferSize: o.sendBufferBytes }),
        });
        list.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          const address = v6 ? o.bindAddress?.v6 : o.bindAddress?.v4;
          s.bind(
            {
              port: o.sourcePortBase === undefined ? 0 : o.sourcePortBase + slot,
              ...(address ? { address } : {}),
            },
            () => {
              s.off("error", reject);
              resolve();
            },
          );
        });
        await new Promise<void>((resolve, reject) => {
          s.connect(t.port, t.address, (err?: Error) => (err ? reject(err) : resolve()));
        });
      }
    }
  } catch (err) {
    for (const s of sockets.flat()) {
      try {
        s.close();
      } catch {
        // never bound
      }
    }
    throw new EgressError(EgressErrorCode.OpenFailed, `cannot open UDP sockets: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new DgramTransport(slots, sockets);
}

function openNative(o: UdpTransportOptions, slots: number, native: NativeSender): NativeTransport {
  const fds: number[][] = [];
  const ports: number[][] = [];
  try {
    for (const t of o.targets) {
      const v6 = addressFamily(t.address) === 6;
      const list: number[] = [];
      const portList: number[] = [];
      fds.push(list);
      ports.push(portList);
      for (let slot = 0; slot < slots; slot++) {
        const opened = native.open({
          family: v6 ? 6 : 4,
          bindAddress: (v6 ? o.bindAddress?.v6 : o.bindAddress?.v4) ?? "",
          bindPort: o.sourcePortBase === undefined ? 0 : o.sourcePortBase + slot,
          reuseAddress: o.sourcePortBase !== undefined,
          address: t.address,
          port: t.port,
          sendBufferBytes: o.sendBufferBytes ?? 0,
        });
        list.push(opened.fd);
        portList.push(opened.localPort);
      }
    }
  } catch (err) {
    for (const fd of fds.flat()) native.close(fd);
    throw new EgressError(EgressErrorCode.OpenFailed, `cannot open UDP sockets: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return new NativeTransport(slots, native, fds, ports);
}

/** Opens the sockets for `targets` (target i of the transport is targets[i]). */
export async function createUdpTransport(options: UdpTransportOptions): Promise<DatagramTransport> {
  const slots = checkOptions(options);
  const wanted = options.mechanism ?? "auto";
  if (wanted !== "dgram") {
    const native = loadNativeSender();
    if (native.sender) return openNative(options, slots, native.sender);
    if (wanted === "sendmmsg") {
      throw new EgressError(
        EgressErrorCode.OpenFailed,
        `the native sendmmsg sender is not available: ${native.reason}`,
      );
    }
  }
  return openDgram(options, slots);
}

/** The policy with host names resolved through the system resolver (dns.lookup). */
export function resolvePolicyAddresses(policy: ExportPolicy): Promise<ExportPolicy> {
  return resolveExportPolicy(policy, async (host) => (await lookup(host)).address);
}
