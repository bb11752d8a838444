/** Why a packet was not turned into records. */
export const SkipReason = {
  /** The capture's link type is not one `@cloudtap/packet` decodes. */
  UnsupportedLinkType: "unsupported-link-type",
  /** A header that does not parse (the first malformed layer wins). */
  Malformed: "malformed",
  /** The link layer carries something other than IPv4 or IPv6 (ARP, LLC, ...). */
  NotIp: "not-ip",
  /** An IPv4 or IPv6 fragment, first or not: fragments are counted and skipped, not reassembled. */
  IpFragment: "ip-fragment",
  /** IP carrying neither TCP nor UDP (ICMP, ESP, ...). */
  OtherProtocol: "other-protocol",
  /** A UDP datagram cut short by the capture's snap length: a datagram is only worth its whole payload. */
  TruncatedDatagram: "truncated-datagram",
} as const;
export type SkipReason = (typeof SkipReason)[keyof typeof SkipReason];

export function emptySkipCounts(): Record<SkipReason, number> {
  return {
    [SkipReason.UnsupportedLinkType]: 0,
    [SkipReason.Malformed]: 0,
    [SkipReason.NotIp]: 0,
    [SkipReason.IpFragment]: 0,
    [SkipReason.OtherProtocol]: 0,
    [SkipReason.TruncatedDatagram]: 0,
  };
}

/** What TCP reassembly dropped, skipped or worked around, summed over all connections. */
export interface TcpCounters {
  /** Payload bytes already seen (retransmissions, overlaps), dropped; the first copy seen wins. */
  duplicateBytes: number;
  /** Bytes never seen that a stream jumped over (holes left visible in the offsets). */
  gapBytes: number;
  /** Times a direction's out-of-order buffer hit its cap and gave up on a hole. */
  bufferOverflows: number;
  /** Bytes of a mid-stream connection that lie before the first byte seen of it, dropped. */
  beforeStreamStartBytes: number;
  /** Segments whose payload the capture's snap length cut (the missing tail becomes a gap). */
  truncatedSegments: number;
  /** SYN or SYN-ACK segments whose options did not parse (the segment itself is still used). */
  badOptions: number;
  /** Segments of a connection already closed (retransmissions, the close's last ACK), dropped. */
  afterCloseSegments: number;
  /** Payload bytes of those segments. */
  afterCloseBytes: number;
}

export interface WrittenObject {
  readonly key: string;
  readonly bytes: number;
}

export interface WrittenBlob extends WrittenObject {
  readonly records: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
}

export interface WrittenKeyLog extends WrittenObject {
  /** Where the key log came from: the `keyLog` option, or a Decryption Secrets Block of the capture. */
  readonly source: "key-log-option" | "capture-dsb";
  /** Lines that parse as secrets (by @cloudtap/tls's parser, the one every reader uses). */
  readonly secrets: number;
  /** Lines a reader will skip (malformed or of an unknown label); each is also in the summary's problems. */
  readonly skippedLines: number;
}

export const IngestProblemKind = {
  /** A key log has lines every reader will skip; the message gives line numbers and reasons. */
  KeyLogMalformedLines: "key-log-malformed-lines",
  /**
   * The capture ends inside a record (a capture tool killed while writing): the records before it were
   * ingested and their blobs are complete and valid.
   */
  CaptureTruncated: "capture-truncated",
} as const;
export type IngestProblemKind = (typeof IngestProblemKind)[keyof typeof IngestProblemKind];

/** Something the ingest lost or will make readers skip; never carries a secret. */
export interface IngestProblem {
  /** The object or input it is about (a key-log object key, the capture's name). */
  readonly where: string;
  readonly kind: IngestProblemKind;
  readonly message: string;
}

export interface IngestSummary {
  readonly captureName: string;
  /** Packets read from the capture, skipped ones included. */
  readonly packets: number;
  /** Sum of the captured lengths of those packets. */
  readonly capturedBytes: number;
  readonly connections: {
    readonly tcp: number;
    readonly udp: number;
    /** TCP connections first seen without their handshake. */
    readonly midstream: number;
    /** Connections closed early because the table was full (`maxConnections`). */
    readonly evicted: number;
    /** Connections closed because no packet was seen for `idleTimeoutNs`. */
    readonly idleTimeouts: number;
  };
  /** Payload bytes written as data (TCP, after de-duplication) and datagram (UDP) records. */
  readonly payloadBytes: { readonly tcp: number; readonly udp: number };
  /** Packets skipped, by reason. */
  readonly skipped: Readonly<Record<SkipReason, number>>;
  readonly tcp: Readonly<TcpCounters>;
  readonly blobs: readonly WrittenBlob[];
  readonly keyLogs: readonly WrittenKeyLog[];
  /** Decryption Secrets Blocks of a type other than TLS key log, not written. */
  readonly otherSecretsSkipped: number;
  /** Everything lost or malformed; empty when nothing was. */
  readonly problems: readonly IngestProblem[];
}
