/**
 * The records of CTAP v1 as JavaScript values. The byte layouts are in docs/tap-format.md; the codec is in
 * frame-codec.ts. Records are plain objects so they can be logged, compared and sent as JSON.
 */

/** Frame type codes on the wire (u16). Codes not listed here are skipped by readers and counted. */
export const FrameType = {
  ConnOpen: 0x0001,
  Data: 0x0002,
  Datagram: 0x0003,
  ConnClose: 0x0004,
  BlobEnd: 0x00ff,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Direction of a byte stream inside a connection. The client is the side that opened the connection. */
export const Direction = {
  ClientToServer: 0,
  ServerToClient: 1,
} as const;
export type Direction = (typeof Direction)[keyof typeof Direction];

export function directionName(d: Direction): "c2s" | "s2c" {
  return d === Direction.ClientToServer ? "c2s" : "s2c";
}

export const Transport = { Tcp: 6, Udp: 17 } as const;
export type Transport = (typeof Transport)[keyof typeof Transport];

/** Why a connection ended. */
export const CloseReason = {
  Fin: 1,
  Rst: 2,
  /** The tapper stopped tracking the connection after an idle timeout; no FIN or RST was seen. */
  Timeout: 3,
  /** The tapper itself stopped (shutdown, failover) while the connection was open. */
  TapperStop: 4,
} as const;
export type CloseReason = (typeof CloseReason)[keyof typeof CloseReason];

/** Which side initiated the close; `Unknown` when the tapper cannot tell (timeouts, tapper stop). */
export const CloseInitiator = { Client: 0, Server: 1, Unknown: 0xff } as const;
export type CloseInitiator = (typeof CloseInitiator)[keyof typeof CloseInitiator];

/** An IP address in text form ("10.1.2.3", "2001:db8::1") and a port. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** TCP options the tapper saw on the SYN and SYN-ACK. Zero / `undefined` means not seen. */
export interface TcpOptionsSeen {
  readonly clientMss?: number;
  readonly serverMss?: number;
  readonly clientWindowScale?: number;
  readonly serverWindowScale?: number;
  readonly sackPermitted?: boolean;
  readonly timestamps?: boolean;
  /** Initial sequence numbers, when the tapper saw the handshake; stitchers may reuse them. */
  readonly clientIsn?: number;
  readonly serverIsn?: number;
}

/** Well-known identity attribute keys. Any other UTF-8 key is allowed. */
export const IdentityKey = {
  User: "user",
  Tenant: "tenant",
  App: "app",
  Policy: "policy",
  Device: "device",
} as const;

/** The blob header. `sequence` counts blobs per tapper; `startNs` is the blob's first record time (Unix ns). */
export interface BlobHeader {
  readonly versionMajor: number;
  readonly versionMinor: number;
  readonly tapperId: string;
  readonly sequence: bigint;
  readonly startNs: bigint;
  readonly compression: Compression;
  /** Size in bytes of the header on the wire (fields a newer minor version adds are skipped). */
  readonly headerBytes: number;
}

export const Compression = { None: 0, Gzip: 1, Zstd: 2 } as const;
export type Compression = (typeof Compression)[keyof typeof Compression];

export interface ConnOpenRecord {
  readonly type: "conn-open";
  /** 128-bit connection id as 32 lower-case hex digits; unique per tapped connection, stable across blobs. */
  readonly connId: string;
  readonly timestampNs: bigint;
  readonly transport: Transport;
  readonly ipVersion: 4 | 6;
  readonly client: Endpoint;
  readonly server: Endpoint;
  /** The tapper first saw this connection mid-stream (no SYN); offsets then start at the first byte seen. */
  readonly midstream: boolean;
  readonly tcp: TcpOptionsSeen;
  readonly attributes: Readonly<Record<string, string>>;
}

export interface DataRecord {
  readonly type: "data";
  readonly connId: string;
  readonly direction: Direction;
  /** Offset of `payload[0]` in this direction's byte stream; 0 is the first payload byte after the SYN. */
  readonly offset: number;
  /** Time the first byte of the chunk was seen (Unix ns). */
  readonly timestampNs: bigint;
  /** Nanoseconds between the first and the last byte of the chunk being seen (0 when unknown). */
  readonly spanNs: number;
  /** A view into the decoder's input: copy what you keep beyond the current iteration step. */
  readonly payload: Uint8Array;
}

export interface DatagramRecord {
  readonly type: "datagram";
  readonly connId: string;
  readonly direction: Direction;
  /** Index of this datagram within its direction (0, 1, 2, ...); duplicates share an index. */
  readonly index: number;
  readonly timestampNs: bigint;
  readonly payload: Uint8Array;
}

export interface ConnCloseRecord {
  readonly type: "conn-close";
  readonly connId: string;
  readonly timestampNs: bigint;
  readonly reason: CloseReason;
  readonly initiator: CloseInitiator;
  /** Total payload bytes (TCP) or datagrams' bytes (UDP) the tapper saw per direction. */
  readonly bytesClientToServer: number;
  readonly bytesServerToClient: number;
}

/** The last frame of every complete blob. A blob that ends without one was truncated. */
export interface BlobEndRecord {
  readonly type: "blob-end";
  readonly endNs: bigint;
  /** Number of frames before this one (all types, unknown included). */
  readonly frameCount: number;
  /** Sum of payload bytes of data and datagram records. */
  readonly payloadBytes: number;
}

export type TapRecord = ConnOpenRecord | DataRecord | DatagramRecord | ConnCloseRecord;
export type AnyRecord = TapRecord | BlobEndRecord;
