/**
 * What a stitcher is built from, as plain data: the CLI builds it from flags, the worker threads receive it
 * in a message, the stitcher service parses its environment into it. `createStitcherFromSettings` is the
 * one place that turns it into a `Stitcher`; what is not data (the frame sink, the key source, where keys
 * to embed go) is given beside it.
 */
import type { FrameSink } from "@cloudtap/packet";
import type { TlsKeySource } from "@cloudtap/tls";
import { StitchSettingsError } from "./errors.js";
import { type StitchedFlow, Stitcher, type StitcherTimeOrderOptions } from "./stitcher.js";
import { Variant } from "./tls-variant.js";

export interface StitcherSettings {
  /** Link MTU. Default 1500. */
  readonly mtu?: number;
  /** Bytes the outputs' encapsulation adds inside the MTU (tunnels). Default 0. */
  readonly encapsulationBytes?: number;
  /** Flow filter rules (`accept port=443`, ...). */
  readonly filter?: readonly string[];
  /** A connection that ended by timeout gets a synthetic FIN exchange. Default true. */
  readonly finOnTimeout?: boolean;
  /**
   * Merge a connection's two directions by record time, holding events up to this long (record time), for
   * input that arrives out of time order across blobs (the mesh). Default 0: arrival order.
   */
  readonly reorderWindowNs?: bigint;
  /** The time order of the output (see `StitcherOptions.timeOrder`). Default: on, widened by spans. */
  readonly timeOrder?: StitcherTimeOrderOptions | false;
  /**
   * TLS parsing and decryption. Absent: no TLS parsing (the original variant, with no keys to use or
   * embed, needs none).
   */
  readonly tls?: {
    readonly variant: Variant;
    readonly cleartextPorts?: Readonly<Record<number, number>>;
    /** Whether the output takes each TLS flow's key-log lines before its packets (pcapng secrets blocks). */
    readonly embedKeys: boolean;
  };
}

export interface StitcherWiring {
  readonly sink: FrameSink;
  /** Where keys come from (required when `settings.tls` is set). */
  readonly keys?: TlsKeySource;
  /** Receives a TLS flow's key-log lines, when `settings.tls.embedKeys`. */
  readonly embedKeys?: (keyLogText: string) => void;
  readonly onFlowComplete?: (flow: StitchedFlow) => void;
  /** Record payloads stay valid after `accept` (see `StitcherOptions.stableInput`). */
  readonly stableInput?: boolean;
}

/** Whether TLS must be parsed: keys to use or embed, or a variant that needs decryption. */
export function tlsNeeded(variant: Variant, haveKeys: boolean): boolean {
  return haveKeys || variant !== Variant.Original;
}

export function createStitcherFromSettings(settings: StitcherSettings, wiring: StitcherWiring): Stitcher {
  const tls = settings.tls;
  if (tls && !wiring.keys) throw new StitchSettingsError("stitcher settings with TLS need a key source");
  return new Stitcher({
    sink: wiring.sink,
    ...(settings.mtu === undefined ? {} : { mtu: settings.mtu }),
    ...(settings.encapsulationBytes === undefined ? {} : { encapsulationBytes: settings.encapsulationBytes }),
    ...(settings.filter === undefined ? {} : { filter: settings.filter }),
    ...(settings.finOnTimeout === undefined ? {} : { finOnTimeout: settings.finOnTimeout }),
    ...(settings.timeOrder === undefined ? {} : { timeOrder: settings.timeOrder }),
    ...(settings.reorderWindowNs === undefined ? {} : { reorderWindowNs: settings.reorderWindowNs }),
    ...(wiring.onFlowComplete ? { onFlowComplete: wiring.onFlowComplete } : {}),
    ...(wiring.stableInput ? { stableInput: true } : {}),
    ...(tls && wiring.keys
      ? {
          tls: {
            keys: wiring.keys,
            variant: tls.variant,
            ...(tls.cleartextPorts ? { cleartextPorts: tls.cleartextPorts } : {}),
            ...(tls.embedKeys && wiring.embedKeys ? { embedKeys: wiring.embedKeys } : {}),
          },
        }
      : {}),
  });
}
