/** Messages between the coordinator and its stitch workers (structured-clone safe: no classes, no functions). */
import type { BlobProblem, Variant } from "@cloudtap/stitch";

/** What every shard stitches with: the serializable part of the Stitcher's and the encoder's options. */
export interface ShardSettings {
  readonly format: "pcap" | "pcapng";
  /** pcap only. Default "nanosecond". */
  readonly resolution?: "microsecond" | "nanosecond";
  readonly snapLength?: number;
  readonly mtu?: number;
  readonly encapsulationBytes?: number;
  readonly filter?: readonly string[];
  readonly finOnTimeout?: boolean;
  /** TLS parsing and decryption (as `StitcherTlsOptions`); `embedKeys`: pcapng secrets blocks per connection. */
  readonly tls?: {
    readonly variant: Variant;
    readonly cleartextPorts?: Readonly<Record<number, number>>;
    readonly embedKeys: boolean;
  };
}

export interface ShardInit {
  readonly shard: number;
  readonly shards: number;
  readonly settings: ShardSettings;
  /** Key-log texts known before the run (each worker keeps its own key store). */
  readonly keyLogs: readonly string[];
}

export type ToWorker =
  | {
      readonly t: "blob";
      readonly round: number;
      readonly key: string;
      readonly bytes: Uint8Array;
      readonly nowNs: bigint;
    }
  | {
      readonly t: "keys";
      readonly round: number;
      readonly key: string;
      readonly bytes: Uint8Array;
      readonly nowNs: bigint;
    }
  | { readonly t: "end" }
  | { readonly t: "recycle"; readonly buffers: readonly ArrayBuffer[] };

/** Counters a shard reports with every round (cumulative). */
export interface ShardProgress {
  readonly records: number;
  readonly payloadBytes: number;
}

export type FromWorker =
  | {
      readonly t: "out";
      readonly round: number;
      readonly chunks: readonly Uint8Array[];
      readonly packets: number;
      /** The newest record time this shard has seen. */
      readonly nowNs: bigint;
      readonly progress: ShardProgress;
    }
  | {
      readonly t: "done";
      readonly chunks: readonly Uint8Array[];
      readonly packets: number;
      readonly progress: ShardProgress;
      readonly problems: readonly BlobProblem[];
      readonly unknownFrames: number;
      /** StitcherStats and FlowTableStats, as plain data. */
      readonly stitcher: unknown;
      readonly table: unknown;
    }
  | { readonly t: "error"; readonly message: string; readonly stack?: string };
