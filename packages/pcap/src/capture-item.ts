/** What the capture readers yield. Byte arrays are views into the input chunks: copy what you keep. */

export interface CapturePacket {
  readonly type: "packet";
  /** LINKTYPE_* of the file (pcap) or of the packet's interface (pcapng). */
  readonly linkType: number;
  /**
   * Unix time in nanoseconds. A pcapng Simple Packet Block carries no timestamp: it gets the timestamp of
   * the packet before it in the section, or 0 when it is the first.
   */
  readonly timestampNs: bigint;
  readonly capturedLength: number;
  readonly originalLength: number;
  /** The captured bytes (`capturedLength` of them). */
  readonly data: Uint8Array;
  /** The pcapng interface id within its section; 0 for pcap. */
  readonly interfaceId: number;
  /** Byte offset of the record or block in the file. */
  readonly offset: number;
}

/** A pcapng Decryption Secrets Block of type TLS key log (0x544c534b): NSS key log text. */
export interface CaptureTlsKeyLog {
  readonly type: "tls-key-log";
  readonly text: string;
  readonly offset: number;
}

/** A pcapng Decryption Secrets Block of any other secrets type (WireGuard, ZigBee, OPC UA, ...). */
export interface CaptureSecrets {
  readonly type: "secrets";
  readonly secretsType: number;
  readonly data: Uint8Array;
  readonly offset: number;
}

export type CaptureItem = CapturePacket | CaptureTlsKeyLog | CaptureSecrets;

/** Secrets types of the pcapng Decryption Secrets Block. */
export const SecretsType = {
  TlsKeyLog: 0x544c534b,
  WireGuardKeyLog: 0x57474b4c,
  ZigBeeNwkKey: 0x5a4e574b,
  ZigBeeApsKey: 0x5a415053,
  OpcUaKeyLog: 0x55414b4c,
} as const;
export type SecretsType = (typeof SecretsType)[keyof typeof SecretsType];

export interface CaptureReaderOptions {
  /**
   * The largest pcap record or pcapng block accepted, in bytes. The length field is checked against it
   * before anything is buffered, so a corrupt length cannot make the reader allocate. Default
   * `DEFAULT_MAX_BLOCK_BYTES`.
   */
  readonly maxBlockBytes?: number;
}

/** 16 MiB: well above any real packet (256 KiB snaplen) or secrets block. */
export const DEFAULT_MAX_BLOCK_BYTES = 16 * 1024 * 1024;
