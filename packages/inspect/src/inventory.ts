/**
 * An inventory of tapped data: what blobs hold, which connections they describe, which byte ranges of each
 * direction are present, and every problem found on the way (corrupt or truncated blobs, gaps, records of
 * connections never opened, byte totals that disagree with the data). Pure: the caller feeds it blobs.
 */
import {
  type BlobHeader,
  CloseReason,
  type ConnCloseRecord,
  type ConnOpenRecord,
  type CtapItem,
  CtapReadStats,
  Direction,
  isCtapError,
  readCtap,
  Transport,
} from "@cloudtap/tap-format";
import { describeKeyLogSkips, parseKeyLog } from "@cloudtap/tls";
import { RangeSet } from "./range-set.js";

export const ProblemKind = {
  /** The blob could not be read from its start (bad magic, version, header). */
  BadBlob: "bad-blob",
  /** Frames were skipped inside a blob (checksum, malformed record); the rest was kept. */
  CorruptFrames: "corrupt-frames",
  /** The blob ended early: inside a frame, or without its blob-end frame. */
  TruncatedBlob: "truncated-blob",
  /** The blob could not be fetched from the store. */
  ReadFailed: "read-failed",
  /** Records of a connection whose conn-open record is in none of the blobs. */
  MissingOpen: "missing-open",
  /** A direction has bytes missing below its end (or below the close record's byte total). */
  Gap: "gap",
  /** The close record's byte total disagrees with the highest offset seen. */
  ByteCountMismatch: "byte-count-mismatch",
  /** Two conn-open records for one id disagree on the 5-tuple. */
  ConflictingOpen: "conflicting-open",
  /** The key log has lines that are not valid NSS key log lines. */
  MalformedKeyLog: "malformed-key-log",
} as const;
export type ProblemKind = (typeof ProblemKind)[keyof typeof ProblemKind];

export interface Problem {
  readonly kind: ProblemKind;
  /** The blob key or file, or the connection id. */
  readonly where: string;
  readonly message: string;
}

export interface DirectionReport {
  /** Distinct bytes present. */
  readonly bytes: number;
  /** Bytes delivered more than once (duplicates and overlaps). */
  readonly duplicateBytes: number;
  readonly records: number;
  /** Present ranges, merged: `[start, end)`. */
  readonly ranges: readonly [number, number][];
  /** Missing ranges below the direction's end. */
  readonly gaps: readonly [number, number][];
}

export interface ConnectionReport {
  readonly connId: string;
  readonly transport: "tcp" | "udp" | "unknown";
  readonly client?: string;
  readonly server?: string;
  readonly attributes?: Readonly<Record<string, string>>;
  readonly midstream?: boolean;
  readonly close?: { readonly reason: string; readonly initiator: string };
  readonly c2s: DirectionReport;
  readonly s2c: DirectionReport;
  /** Datagrams per direction (UDP), distinct indexes; duplicates counted apart. */
  readonly datagrams: { readonly c2s: number; readonly s2c: number; readonly duplicates: number };
  readonly firstNs?: string;
  readonly lastNs?: string;
}

export interface BlobReport {
  readonly key: string;
  readonly bytes: number;
  readonly header?: {
    readonly tapperId: string;
    readonly sequence: string;
    readonly startNs: string;
    readonly endNs?: string;
    readonly version: string;
    readonly compression: string;
  };
  readonly records: { connOpen: number; data: number; datagram: number; connClose: number; unknown: number };
  readonly payloadBytes: number;
  readonly complete: boolean;
}

export interface InventoryReport {
  readonly blobs: number;
  readonly blobBytes: number;
  readonly records: { connOpen: number; data: number; datagram: number; connClose: number; unknown: number };
  readonly payloadBytes: number;
  readonly connections: {
    total: number;
    tcp: number;
    udp: number;
    closed: number;
    midstream: number;
    withGaps: number;
  };
  readonly tappers: readonly string[];
  readonly timeRange?: { readonly firstNs: string; readonly lastNs: string };
  readonly keyLogs?: KeyLogReport;
  readonly problemCounts: Readonly<Record<string, number>>;
  readonly problems: readonly Problem[];
  readonly connectionList: readonly ConnectionReport[];
  readonly blobList: readonly BlobReport[];
}

export interface KeyLogReport {
  readonly objects: number;
  readonly lines: number;
  readonly byLabel: Readonly<Record<string, number>>;
  readonly clientRandoms: number;
  readonly malformedLines: number;
}

interface DirState {
  readonly ranges: RangeSet;
  duplicateBytes: number;
  records: number;
  readonly datagramIndexes: Set<number>;
  datagramDuplicates: number;
}

interface ConnState {
  open?: ConnOpenRecord;
  close?: ConnCloseRecord;
  readonly dirs: [DirState, DirState];
  firstNs?: bigint;
  lastNs?: bigint;
}

const newDir = (): DirState => ({
  ranges: new RangeSet(),
  duplicateBytes: 0,
  records: 0,
  datagramIndexes: new Set(),
  datagramDuplicates: 0,
});

const reasonName: Record<number, string> = {
  [CloseReason.Fin]: "fin",
  [CloseReason.Rst]: "rst",
  [CloseReason.Timeout]: "timeout",
  [CloseReason.TapperStop]: "tapper-stop",
};
const initiatorName: Record<number, string> = { 0: "client", 1: "server", 255: "unknown" };

function endpoint(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

export class Inventory {
  private readonly conns = new Map<string, ConnState>();
  private readonly blobReports: BlobReport[] = [];
  private readonly problemList: Problem[] = [];
  private readonly tapperIds = new Set<string>();
  private keyLog:
    | {
        objects: number;
        lines: number;
        byLabel: Map<string, number>;
        randoms: Set<string>;
        malformed: number;
      }
    | undefined;

  problem(kind: ProblemKind, where: string, message: string): void {
    this.problemList.push({ kind, where, message });
  }

  private conn(id: string): ConnState {
    let c = this.conns.get(id);
    if (!c) {
      c = { dirs: [newDir(), newDir()] };
      this.conns.set(id, c);
    }
    return c;
  }

  private touch(c: ConnState, ns: bigint): void {
    if (c.firstNs === undefined || ns < c.firstNs) c.firstNs = ns;
    if (c.lastNs === undefined || ns > c.lastNs) c.lastNs = ns;
  }

  /** Reads one blob in resync mode, so that a damaged blob still yields what it holds. */
  async addBlob(key: string, source: AsyncIterable<Uint8Array>): Promise<BlobReport> {
    let bytes = 0;
    async function* counted() {
      for await (const c of source) {
        bytes += c.length;
        yield c;
      }
    }
    const stats = new CtapReadStats();
    let header: BlobHeader | undefined;
    let endNs: bigint | undefined;
    let complete = false;
    const corrupt: string[] = [];
    try {
      for await (const item of readCtap(counted(), { onCorruption: "resync", stats })) {
        this.addItem(item, key, corrupt);
        if (item.type === "header") {
          header = item.header;
          this.tapperIds.add(item.header.tapperId);
        } else if (item.type === "blob-end") {
          endNs = item.endNs;
          complete = !stats.frameCountMismatch && stats.corruptions === 0;
        }
      }
    } catch (err) {
      if (!isCtapError(err)) {
        this.problem(ProblemKind.ReadFailed, key, err instanceof Error ? err.message : String(err));
      } else {
        this.problem(ProblemKind.BadBlob, key, `${err.name}: ${err.message}`);
      }
    }
    const truncation = corrupt.filter(
      (m) => m.startsWith("TruncatedFrameError") || m.startsWith("MissingTrailerError"),
    );
    const other = corrupt.filter((m) => !truncation.includes(m));
    if (truncation.length) this.problem(ProblemKind.TruncatedBlob, key, truncation.join("; "));
    if (other.length) {
      this.problem(
        ProblemKind.CorruptFrames,
        key,
        `${other.length} bad region(s), ${stats.skippedBytes} bytes skipped: ${other.slice(0, 3).join("; ")}`,
      );
    }
    const report: BlobReport = {
      key,
      bytes,
      ...(header
        ? {
            header: {
              tapperId: header.tapperId,
              sequence: header.sequence.toString(),
              startNs: header.startNs.toString(),
              ...(endNs === undefined ? {} : { endNs: endNs.toString() }),
              version: `${header.versionMajor}.${header.versionMinor}`,
              compression: ["none", "gzip", "zstd"][header.compression] ?? String(header.compression),
            },
          }
        : {}),
      records: {
        connOpen: stats.connOpen,
        data: stats.data,
        datagram: stats.datagram,
        connClose: stats.connClose,
        unknown: stats.unknownFrames,
      },
      payloadBytes: stats.payloadBytes,
      complete,
    };
    this.blobReports.push(report);
    return report;
  }

  private addItem(item: CtapItem, key: string, corrupt: string[]): void {
    switch (item.type) {
      case "corruption":
        corrupt.push(`${item.error.name}: ${item.error.message}`);
        return;
      case "conn-open": {
        const c = this.conn(item.connId);
        if (c.open) {
          const a = c.open;
          if (
            a.client.address !== item.client.address ||
            a.client.port !== item.client.port ||
            a.server.address !== item.server.address ||
            a.server.port !== item.server.port ||
            a.transport !== item.transport
          ) {
            this.problem(
              ProblemKind.ConflictingOpen,
              item.connId,
              `second conn-open in ${key} names another 5-tuple`,
            );
          }
        } else {
          c.open = item;
        }
        this.touch(c, item.timestampNs);
        return;
      }
      case "data": {
        const c = this.conn(item.connId);
        const d = c.dirs[item.direction];
        d.records++;
        d.duplicateBytes += d.ranges.add(item.offset, item.offset + item.payload.length);
        this.touch(c, item.timestampNs);
        return;
      }
      case "datagram": {
        const c = this.conn(item.connId);
        const d = c.dirs[item.direction];
        d.records++;
        if (d.datagramIndexes.has(item.index)) d.datagramDuplicates++;
        else {
          d.datagramIndexes.add(item.index);
          d.ranges.add(d.ranges.end, d.ranges.end + item.payload.length);
        }
        this.touch(c, item.timestampNs);
        return;
      }
      case "conn-close": {
        const c = this.conn(item.connId);
        c.close ??= item;
        this.touch(c, item.timestampNs);
        return;
      }
      default:
        return;
    }
  }

  /**
   * Counts key-log lines by label without keeping any secret. Lines are parsed by @cloudtap/tls's parser (the
   * one stitch, ingest and the key-broker use), so all agree on which lines are valid; skipped lines are a
   * problem of the object, with line numbers and reasons.
   */
  addKeyLog(key: string, text: string | Uint8Array): void {
    this.keyLog ??= { objects: 0, lines: 0, byLabel: new Map(), randoms: new Set(), malformed: 0 };
    const k = this.keyLog;
    k.objects++;
    const parsed = parseKeyLog(text);
    for (const e of parsed.entries) {
      k.lines++;
      k.byLabel.set(e.label, (k.byLabel.get(e.label) ?? 0) + 1);
      k.randoms.add(Buffer.from(e.clientRandom).toString("hex"));
    }
    k.malformed += parsed.stats.skippedLines;
    const said = describeKeyLogSkips(parsed);
    if (said) this.problem(ProblemKind.MalformedKeyLog, key, said);
  }

  /** The inventory so far; problems about connections (gaps, missing opens) are derived here, each call anew. */
  report(): InventoryReport {
    const problems: Problem[] = [...this.problemList];
    const problem = (kind: ProblemKind, where: string, message: string) =>
      problems.push({ kind, where, message });
    const connectionList: ConnectionReport[] = [];
    let tcp = 0;
    let udp = 0;
    let closed = 0;
    let midstream = 0;
    let withGaps = 0;
    let first: bigint | undefined;
    let last: bigint | undefined;
    const conns = [...this.conns.entries()].sort((a, b) => {
      const x = a[1].firstNs ?? 0n;
      const y = b[1].firstNs ?? 0n;
      return x < y ? -1 : x > y ? 1 : a[0] < b[0] ? -1 : 1;
    });
    for (const [id, c] of conns) {
      if (!c.open) {
        problem(ProblemKind.MissingOpen, id, "records of a connection whose conn-open record was not found");
      }
      const isUdp = c.open?.transport === Transport.Udp;
      if (c.open) {
        if (isUdp) udp++;
        else tcp++;
        if (c.open.midstream) midstream++;
      }
      if (c.close) closed++;
      if (c.firstNs !== undefined && (first === undefined || c.firstNs < first)) first = c.firstNs;
      if (c.lastNs !== undefined && (last === undefined || c.lastNs > last)) last = c.lastNs;
      const dirReport = (dir: Direction): DirectionReport => {
        const d = c.dirs[dir];
        const name = dir === Direction.ClientToServer ? "c2s" : "s2c";
        let upTo = d.ranges.end;
        if (!isUdp && c.close) {
          const total =
            dir === Direction.ClientToServer ? c.close.bytesClientToServer : c.close.bytesServerToClient;
          if (total !== d.ranges.end) {
            problem(
              ProblemKind.ByteCountMismatch,
              id,
              `${name}: close record counts ${total} bytes, data reaches offset ${d.ranges.end}`,
            );
          }
          upTo = Math.max(upTo, total);
        }
        const gaps = isUdp ? [] : d.ranges.holes(upTo);
        for (const [s, e] of gaps) problem(ProblemKind.Gap, id, `${name}: bytes [${s}, ${e}) missing`);
        return {
          bytes: d.ranges.size,
          duplicateBytes: d.duplicateBytes,
          records: d.records,
          ranges: d.ranges.ranges(),
          gaps,
        };
      };
      const c2s = dirReport(Direction.ClientToServer);
      const s2c = dirReport(Direction.ServerToClient);
      if (c2s.gaps.length || s2c.gaps.length) withGaps++;
      connectionList.push({
        connId: id,
        transport: c.open ? (isUdp ? "udp" : "tcp") : "unknown",
        ...(c.open
          ? {
              client: endpoint(c.open.client.address, c.open.client.port),
              server: endpoint(c.open.server.address, c.open.server.port),
              attributes: c.open.attributes,
              midstream: c.open.midstream,
            }
          : {}),
        ...(c.close
          ? {
              close: {
                reason: reasonName[c.close.reason] ?? "?",
                initiator: initiatorName[c.close.initiator] ?? "?",
              },
            }
          : {}),
        c2s,
        s2c,
        datagrams: {
          c2s: c.dirs[0].datagramIndexes.size,
          s2c: c.dirs[1].datagramIndexes.size,
          duplicates: c.dirs[0].datagramDuplicates + c.dirs[1].datagramDuplicates,
        },
        ...(c.firstNs === undefined ? {} : { firstNs: c.firstNs.toString() }),
        ...(c.lastNs === undefined ? {} : { lastNs: c.lastNs.toString() }),
      });
    }
    const records = { connOpen: 0, data: 0, datagram: 0, connClose: 0, unknown: 0 };
    let payloadBytes = 0;
    let blobBytes = 0;
    for (const b of this.blobReports) {
      for (const k of Object.keys(records) as (keyof typeof records)[]) records[k] += b.records[k];
      payloadBytes += b.payloadBytes;
      blobBytes += b.bytes;
    }
    const problemCounts: Record<string, number> = {};
    for (const p of problems) problemCounts[p.kind] = (problemCounts[p.kind] ?? 0) + 1;
    const k = this.keyLog;
    return {
      blobs: this.blobReports.length,
      blobBytes,
      records,
      payloadBytes,
      connections: { total: this.conns.size, tcp, udp, closed, midstream, withGaps },
      tappers: [...this.tapperIds].sort(),
      ...(first !== undefined && last !== undefined
        ? { timeRange: { firstNs: first.toString(), lastNs: last.toString() } }
        : {}),
      ...(k
        ? {
            keyLogs: {
              objects: k.objects,
              lines: k.lines,
              byLabel: Object.fromEntries([...k.byLabel].sort()),
              clientRandoms: k.randoms.size,
              malformedLines: k.malformed,
            },
          }
        : {}),
      problemCounts,
      problems,
      connectionList,
      blobList: this.blobReports,
    };
  }
}
