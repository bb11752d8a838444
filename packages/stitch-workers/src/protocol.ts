/** Messages between the coordinator and its stitch workers (structured-clone safe: no classes, no functions). */
import type { BlobProblem } from "@cloudtap/fetch";
import type { FlowTableCounters, StitcherCounters, StitcherSettings } from "@cloudtap/stitch";

/** What every shard stitches with: the stitcher's settings and the encoder's (all plain data). */
export interface ShardSettings extends StitcherSettings {
  readonly format: "pcap" | "pcapng";
  /** pcap only. Default "nanosecond". */
  readonly resolution?: "microsecond" | "nanosecond";
  readonly snapLength?: number;
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
      readonly stitcher: StitcherCounters;
      readonly table: FlowTableCounters;
    }
  | { readonly t: "error"; readonly message: string; readonly stack?: string };
