/**
 * The optional native UDP sender (native/sendmmsg.c): sendmmsg(2) per socket per batch, with UDP GSO for
 * runs of equal-size datagrams when the kernel takes it. Built at install by node-gyp when a compiler is
 * there (scripts/build-native.mjs); when it is missing or fails to load, the transport falls back to
 * node:dgram and says why (`loadNativeSender().reason`). CLOUDTAP_EGRESS_NATIVE=0 turns it off.
 */
import { createRequire } from "node:module";

export interface NativeOpenOptions {
  readonly family: 4 | 6;
  /** "" for the kernel's choice. */
  readonly bindAddress: string;
  /** 0 for an ephemeral port. */
  readonly bindPort: number;
  readonly reuseAddress: boolean;
  readonly address: string;
  readonly port: number;
  /** 0 for the system default. */
  readonly sendBufferBytes: number;
}

export interface NativeSendResult {
  readonly sent: number;
  readonly bytes: number;
  /** Datagrams refused, by errno name (absent when none was). */
  readonly errors?: Readonly<Record<string, number>>;
  readonly lastErrorMessage?: string;
  /** ICMP reports that sent datagrams did not arrive, by errno name (absent when none came). */
  readonly unreachable?: Readonly<Record<string, number>>;
}

export interface NativeSender {
  open(options: NativeOpenOptions): { fd: number; localPort: number };
  /** Sends datagrams [from, to) of a batch, datagram i through socket fds[slots[i]]. */
  sendBatch(
    fds: readonly number[],
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    slots: Uint16Array,
    from: number,
    to: number,
  ): NativeSendResult;
  close(fd: number): void;
  /** Whether the kernel took UDP GSO on the first socket that tried it. */
  readonly gso: () => boolean;
}

interface Binding {
  open(
    family: number,
    bindAddress: string,
    bindPort: number,
    reuse: boolean,
    address: string,
    port: number,
    sndbuf: number,
  ): number[];
  sendBatch(
    fds: Int32Array,
    bytes: Uint8Array,
    offsets: Uint32Array,
    lengths: Uint32Array,
    slots: Uint16Array,
    from: number,
    to: number,
    /** [sent, bytes, refusal kinds, report kinds] */
    result: Float64Array,
    /** (errno, count) pairs: refusals at [0, 32), ICMP reports at [32, 64) */
    errors: Int32Array,
  ): void;
  close(fd: number): void;
  gsoEnabled(): boolean;
  errnoName(errno: number): string;
  strerror(errno: number): string;
}

let cached: { sender?: NativeSender; reason: string } | undefined;

export function loadNativeSender(): { readonly sender?: NativeSender; readonly reason: string } {
  if (cached) return cached;
  if (process.env["CLOUDTAP_EGRESS_NATIVE"] === "0") {
    cached = { reason: "turned off by CLOUDTAP_EGRESS_NATIVE=0" };
    return cached;
  }
  let binding: Binding;
  try {
    binding = createRequire(import.meta.url)("@cloudtap/egress/native") as Binding;
  } catch (err) {
    cached = { reason: `not built (${(err as Error).message.split("\n")[0]})` };
    return cached;
  }
  const fdArrays = new WeakMap<readonly number[], Int32Array>();
  // [sent, bytes, refusal kinds, report kinds]; errors: (errno, count) pairs, refusals then reports.
  const result = new Float64Array(4);
  const errors = new Int32Array(64);
  const sender: NativeSender = {
    open(o) {
      const [fd, localPort] = binding.open(
        o.family,
        o.bindAddress,
        o.bindPort,
        o.reuseAddress,
        o.address,
        o.port,
        o.sendBufferBytes,
      );
      if (fd === undefined || fd < 0) {
        const errno = -(fd ?? -1);
        throw new Error(`${binding.errnoName(errno)}: ${binding.strerror(errno)}`);
      }
      return { fd, localPort: localPort ?? 0 };
    },
    sendBatch(fds, bytes, offsets, lengths, slots, from, to) {
      let fdArray = fdArrays.get(fds);
      if (!fdArray) {
        fdArray = Int32Array.from(fds);
        fdArrays.set(fds, fdArray);
      }
      binding.sendBatch(fdArray, bytes, offsets, lengths, slots, from, to, result, errors);
      const refusals = result[2]!;
      const reports = result[3]!;
      if (refusals === 0 && reports === 0) return { sent: result[0]!, bytes: result[1]! };
      const named = (at: number, kinds: number): Record<string, number> => {
        const out: Record<string, number> = {};
        for (let i = 0; i < kinds; i++) {
          const name = binding.errnoName(errors[at + 2 * i]!);
          out[name] = (out[name] ?? 0) + errors[at + 2 * i + 1]!;
        }
        return out;
      };
      return {
        sent: result[0]!,
        bytes: result[1]!,
        ...(refusals > 0
          ? { errors: named(0, refusals), lastErrorMessage: binding.strerror(errors[2 * (refusals - 1)]!) }
          : {}),
        ...(reports > 0 ? { unreachable: named(32, reports) } : {}),
      };
    },
    close: (fd) => binding.close(fd),
    gso: () => binding.gsoEnabled(),
  };
  cached = { sender, reason: "loaded" };
  return cached;
}
