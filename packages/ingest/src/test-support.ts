// Helpers for this package's tests: a throwaway directory store, and reading ingested blobs back.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ObjectStore, openStore } from "@cloudtap/object-store";
import {
  type ConnCloseRecord,
  type ConnOpenRecord,
  type DatagramRecord,
  dataPrefix,
  readCtap,
} from "@cloudtap/tap-format";

export async function withTempStore<T>(fn: (store: ObjectStore) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "cloudtap-ingest-"));
  try {
    return await fn(openStore(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface ReadBackConnection {
  readonly open: ConnOpenRecord;
  readonly close: ConnCloseRecord | undefined;
  /** Data records per direction (0 = client to server), payloads copied, in the order read. */
  readonly data: [
    { offset: number; payload: Uint8Array; timestampNs: bigint }[],
    { offset: number; payload: Uint8Array; timestampNs: bigint }[],
  ];
  readonly datagrams: [DatagramRecord[], DatagramRecord[]];
}

/** Reads every data blob under `prefix` back, grouping records by connection. */
export async function readBack(store: ObjectStore, prefix = ""): Promise<Map<string, ReadBackConnection>> {
  const conns = new Map<string, ReadBackConnection>();
  const get = (connId: string): ReadBackConnection => {
    const c = conns.get(connId);
    if (c === undefined) throw new Error(`record for connection ${connId} before its conn-open`);
    return c;
  };
  for await (const info of store.list(dataPrefix(prefix))) {
    for await (const item of readCtap(store.read(info.key))) {
      switch (item.type) {
        case "conn-open":
          if (conns.has(item.connId)) throw new Error(`second conn-open for ${item.connId}`);
          conns.set(item.connId, { open: item, close: undefined, data: [[], []], datagrams: [[], []] });
          break;
        case "data":
          get(item.connId).data[item.direction].push({
            offset: item.offset,
            payload: item.payload.slice(),
            timestampNs: item.timestampNs,
          });
          break;
        case "datagram":
          get(item.connId).datagrams[item.direction].push({ ...item, payload: item.payload.slice() });
          break;
        case "conn-close": {
          const c = get(item.connId);
          if (c.close !== undefined) throw new Error(`second conn-close for ${item.connId}`);
          conns.set(item.connId, { ...c, close: item });
          break;
        }
        default:
          break;
      }
    }
  }
  return conns;
}

/**
 * Joins one direction's data payloads in offset order. Throws if two records overlap; a gap (a jump in
 * offsets) is allowed and reported.
 */
export function joinDirection(records: readonly { offset: number; payload: Uint8Array }[]): {
  bytes: Uint8Array;
  gaps: number;
} {
  const sorted = [...records].sort((a, b) => a.offset - b.offset);
  const total = sorted.reduce((n, r) => n + r.payload.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  let end = sorted[0]?.offset ?? 0;
  let gaps = 0;
  for (const r of sorted) {
    if (r.offset < end) throw new Error(`records overlap at offset ${r.offset} (previous ended at ${end})`);
    if (r.offset > end) gaps++;
    out.set(r.payload, at);
    at += r.payload.length;
    end = r.offset + r.payload.length;
  }
  if ((sorted[0]?.offset ?? 0) !== 0) gaps++;
  return { bytes: out, gaps };
}

/** Builds small captures packet by packet for tests. */
export class CaptureBuilder {
  readonly packets: { timestampNs: bigint; data: Uint8Array }[] = [];
  #ns = 1_700_000_000_000_000_000n;

  /** Adds a frame, 1 ms after the previous one unless `timestampNs` is given. */
  add(data: Uint8Array, timestampNs?: bigint): this {
    this.#ns = timestampNs ?? this.#ns + 1_000_000n;
    this.packets.push({ timestampNs: this.#ns, data });
    return this;
  }
}
