import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { ObjectStore } from "@cloudtap/object-store";
import { keysPrefix, parseBlobKey, TruncatedFrameError } from "@cloudtap/tap-format";
import type { ManifestConnection, SimulationManifest } from "./manifest.js";
import { maskNonDeterministic } from "./manifest.js";
import { runSimulation, type SimulationOptions } from "./simulation.js";
import {
  collectConnections,
  concatDatagrams,
  loggingStore,
  type ReadBlob,
  readBlobs,
  readKeyLogLines,
  reassembleStream,
  streamPrefix,
  type TappedConnection,
  withTempStore,
} from "./test-helpers.js";

const SMALL_RUN: Omit<SimulationOptions, "dataStore" | "keyStore"> = {
  // This seed's plan has all four protocols, CBC suites with and without encrypt-then-MAC, a tapper failover,
  // resets and server-side closes, and IPv6 clients (checked below, so a planner change cannot hide them).
  connections: 32,
  seed: "tapsim-test-5",
  // Small blobs and a short age, so that connections span several blobs.
  blobSize: 64 * 1024,
  blobAgeNs: 1_000_000_000n,
  keyLogBatchConnections: 4,
};

function isTls(c: ManifestConnection): boolean {
  return c.protocol === "https-h1" || c.protocol === "https-h2";
}

/** The client random in the ClientHello at the start of a TLS stream (record 5 + handshake 4 + version 2). */
function helloRandom(conn: TappedConnection): string {
  const head = streamPrefix(conn.c2s, 43);
  assert.equal(head[0], 0x16, "first record is a handshake record");
  assert.equal(head[5], 0x01, "first handshake message is a ClientHello");
  return head.subarray(11, 43).toString("hex");
}

/** Extension types in the ServerHello at the start of a TLS 1.2 server stream. */
function serverHelloExtensions(conn: TappedConnection): number[] {
  const b = streamPrefix(conn.s2c, 512);
  assert.equal(b[5], 0x02, "first handshake message is a ServerHello");
  let p = 5 + 4 + 2 + 32;
  p += 1 + b[p]!; // session id
  p += 2 + 1; // cipher suite, compression method
  const end = p + 2 + b.readUInt16BE(p);
  const types: number[] = [];
  for (p += 2; p < end; p += 4 + b.readUInt16BE(p + 2)) types.push(b.readUInt16BE(p));
  return types;
}

/**
 * Per tapper and in blob key order: streams with a record in a blob at a lower offset than a record of theirs
 * in an earlier blob (`acrossBlobs`), and records that follow a higher offset of their stream within one blob
 * (`withinBlobs`). Both are 0 when every tapper's listing holds each stream in order.
 */
function offsetInversions(blobs: readonly ReadBlob[]): { acrossBlobs: number; withinBlobs: number } {
  const before = new Map<string, number>();
  let acrossBlobs = 0;
  let withinBlobs = 0;
  for (const blob of blobs) {
    const here = new Map<string, number>();
    for (const r of blob.records) {
      if (r.type !== "data") continue;
      const k = `${blob.header.tapperId}/${r.connId}/${r.direction}`;
      const earlier = before.get(k);
      if (earlier !== undefined && r.offset < earlier) acrossBlobs++;
      const max = here.get(k);
      if (max !== undefined && r.offset < max) withinBlobs++;
      here.set(k, Math.max(max ?? -1, r.offset));
    }
    for (const [k, max] of here) before.set(k, Math.max(before.get(k) ?? -1, max));
  }
  return { acrossBlobs, withinBlobs };
}

function assertStreamsMatch(
  m: ManifestConnection,
  conn: TappedConnection,
  skip?: (dir: "c2s" | "s2c") => boolean,
): void {
  for (const dir of ["c2s", "s2c"] as const) {
    if (skip?.(dir)) continue;
    const got = m.transport === "udp" ? concatDatagrams(conn[dir]) : reassembleStream(conn[dir]);
    assert.deepEqual(got.holes, [], `${m.connId} ${dir} has no holes`);
    assert.equal(got.length, m[dir].raw.length, `${m.connId} ${dir} raw length`);
    assert.equal(got.sha256, m[dir].raw.sha256, `${m.connId} ${dir} raw sha256`);
    if (m.transport === "udp") assert.equal(conn[dir].size, m[dir].datagrams, `${m.connId} ${dir} datagrams`);
  }
}

async function storedManifest(store: ObjectStore, key: string): Promise<SimulationManifest> {
  return JSON.parse(new TextDecoder().decode(await store.readBytes(key))) as SimulationManifest;
}

describe("tapsim - a clean run", () => {
  let manifest: SimulationManifest;
  let blobs: ReadBlob[];
  let conns: Map<string, TappedConnection>;
  let keyLines: string[];
  const writes: string[] = [];

  test("runs and writes its manifest", async () => {
    await withTempStore(async (dataStore) => {
      await withTempStore(async (keyStore) => {
        const result = await runSimulation({
          ...SMALL_RUN,
          dataStore: loggingStore(dataStore, writes),
          keyStore: loggingStore(keyStore, writes),
        });
        manifest = result.manifest;
        assert.deepEqual(result.counters, {
          relayStrangers: 0,
          relayStrays: 0,
          dnsMalformed: 0,
          forcedReleases: 0,
        });
        assert.equal(result.manifestKey, `manifest/${manifest.runId}.json`);
        assert.deepEqual(
          await storedManifest(dataStore, result.manifestKey),
          JSON.parse(JSON.stringify(manifest)),
        );
        blobs = await readBlobs(dataStore, "");
        conns = collectConnections(blobs);
        keyLines = (await readKeyLogLines(keyStore, keysPrefix(""))).lines;
        assert.deepEqual(
          (await readKeyLogLines(dataStore, keysPrefix(""))).lines,
          [],
          "no key logs in the data store",
        );
        let keyLogObjects = 0;
        for await (const o of keyStore.list(keysPrefix(""))) {
          const path = fileURLToPath(new URL(o.key, `${keyStore.url.replace(/\/?$/, "/")}`));
          assert.equal((await stat(path)).mode & 0o077, 0, `${o.key}: readable by its owner only`);
          keyLogObjects++;
        }
        assert.ok(keyLogObjects > 0);
      });
    });
    const cs = manifest.connections;
    assert.equal(cs.length, 32);
    assert.deepEqual([...new Set(cs.map((c) => c.protocol))].sort(), ["dns", "http", "https-h1", "https-h2"]);
    assert.deepEqual(
      [...new Set(cs.filter((c) => c.tls?.version === "TLSv1.3").map((c) => c.tls!.suite))].sort(),
      ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"],
    );
    assert.deepEqual(
      [...new Set(cs.map((c) => c.tls?.encryptThenMac).filter((e) => e !== undefined))].sort(),
      [false, true],
    );
    assert.ok(
      cs.some((c) => c.tappers.length === 2),
      "a connection moved to the second tapper",
    );
    assert.ok(
      cs.some((c) => c.ipVersion === 6),
      "an IPv6 connection",
    );
    const closes = new Set(cs.map((c) => `${c.close.reason}/${c.close.initiator}`));
    for (const k of ["fin/client", "fin/server", "rst/client", "timeout/unknown"])
      assert.ok(closes.has(k), k);
  });

  test("every blob is whole, time-ordered and named after its header", () => {
    assert.ok(blobs.length >= 4, `${blobs.length} blobs`);
    assert.deepEqual(
      blobs.map((b) => b.key),
      manifest.blobs.data.map((b) => b.key).sort(),
    );
    for (const blob of blobs) {
      assert.equal(blob.error, undefined, `${blob.key} reads without error`);
      const parsed = parseBlobKey(blob.key);
      assert.ok(parsed, blob.key);
      assert.equal(parsed.tapperId, blob.header.tapperId);
      assert.equal(parsed.sequence, blob.header.sequence);
      assert.equal(parsed.startNs, blob.header.startNs);
      assert.equal(blob.records[0]!.timestampNs, blob.header.startNs);
      for (let i = 1; i < blob.records.length; i++) {
        assert.ok(
          blob.records[i]!.timestampNs >= blob.records[i - 1]!.timestampNs,
          `${blob.key} sorted at ${i}`,
        );
      }
      for (const r of blob.records)
        assert.ok(r.timestampNs <= blob.endNs!, `${blob.key} record within the end time`);
    }
    assert.ok(
      [...conns.values()].some((c) => c.blobKeys.size >= 3),
      "some connection spans at least three blobs",
    );
    assert.deepEqual(
      offsetInversions(blobs),
      { acrossBlobs: 0, withinBlobs: 0 },
      "per tapper, blobs in key order hold every stream in offset order",
    );
  });

  test("every manifest connection is in the blobs, byte for byte", () => {
    assert.equal(conns.size, manifest.connections.length);
    for (const m of manifest.connections) {
      const conn = conns.get(m.connId);
      assert.ok(conn, `${m.connId} is in the blobs`);
      assert.equal(conn.opens.length, 1);
      assert.equal(conn.closes.length, 1);
      const open = conn.opens[0]!;
      assert.equal(open.timestampNs.toString(), m.startNs);
      assert.deepEqual(open.client, m.client);
      assert.deepEqual(open.server, m.server);
      assert.equal(open.ipVersion, m.ipVersion);
      assert.equal(open.transport, m.transport === "tcp" ? 6 : 17);
      assert.deepEqual(open.attributes, m.attributes);
      if (m.tcp) assert.equal(open.tcp.clientMss, m.tcp.clientMss);
      assert.deepEqual([...conn.tapperIds].sort(), [...m.tappers].sort());
      const close = conn.closes[0]!;
      assert.equal(close.reason, { fin: 1, rst: 2, timeout: 3, "tapper-stop": 4 }[m.close.reason]);
      assert.equal(close.initiator, { client: 0, server: 1, unknown: 0xff }[m.close.initiator]);
      assert.equal(close.bytesClientToServer, m.c2s.raw.length);
      assert.equal(close.bytesServerToClient, m.s2c.raw.length);
      assert.equal(close.timestampNs.toString(), m.close.timestampNs);
      assertStreamsMatch(m, conn);
      if (!isTls(m)) {
        assert.deepEqual(m.c2s.app, m.c2s.raw, "plain protocols: application bytes are the wire bytes");
        assert.deepEqual(m.s2c.app, m.s2c.raw);
      } else {
        assert.ok(
          m.c2s.app.length < m.c2s.raw.length && m.s2c.app.length < m.s2c.raw.length,
          `${m.connId}: TLS adds bytes to each direction`,
        );
      }
    }
  });

  test("the manifest's exchanges and addresses are plausible", () => {
    for (const m of manifest.connections) {
      if (m.protocol === "dns") {
        assert.ok(m.dns.length >= 1, `${m.connId}: DNS queries`);
        assert.equal(m.server.port, 53);
      } else {
        assert.ok(m.http.length >= 1, `${m.connId}: HTTP exchanges`);
        const bodies = m.http.reduce((n, e) => n + e.responseBodyLength + e.requestBodyLength, 0);
        assert.ok(m.s2c.app.length + m.c2s.app.length > bodies, "the application bytes hold every body");
      }
      if (m.protocol === "http") assert.equal(m.server.port, 80);
      if (isTls(m)) {
        assert.ok([443, 8443].includes(m.server.port), `${m.connId}: HTTPS port ${m.server.port}`);
        assert.equal(m.sni, m.serverName);
        assert.equal(m.tls!.alpn, m.protocol === "https-h2" ? "h2" : m.tls!.alpn);
      }
      assert.match(m.server.address, /^(192\.0\.2\.|198\.51\.100\.|203\.0\.113\.|2001:db8:)/);
      assert.match(m.client.address, /^(10\.|172\.(1[6-9]|2\d|3[01])\.|192\.168\.|fd|2001:db8:)/);
      for (const k of ["user", "tenant", "app", "policy", "device"])
        assert.ok(m.attributes[k], `attribute ${k}`);
    }
  });

  test("key logs hold the secrets of every TLS connection, named by the ClientHello's random", () => {
    const byRandom = new Map<string, string[]>();
    for (const line of keyLines) {
      const [label, random] = line.split(" ");
      byRandom.set(random!, [...(byRandom.get(random!) ?? []), label!]);
    }
    const tls = manifest.connections.filter(isTls);
    assert.ok(tls.length >= 8, `${tls.length} TLS connections`);
    for (const m of tls) {
      assert.equal(helloRandom(conns.get(m.connId)!), m.tls!.clientRandom, `${m.connId} ClientHello random`);
      const labels = byRandom.get(m.tls!.clientRandom) ?? [];
      if (m.tls!.version === "TLSv1.3") {
        for (const l of [
          "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
          "SERVER_HANDSHAKE_TRAFFIC_SECRET",
          "CLIENT_TRAFFIC_SECRET_0",
          "SERVER_TRAFFIC_SECRET_0",
        ]) {
          assert.ok(labels.includes(l), `${m.connId} has ${l}`);
        }
      } else {
        assert.deepEqual(labels, ["CLIENT_RANDOM"], `${m.connId} has its CLIENT_RANDOM line`);
      }
    }
    const lastData = writes.filter((k) => k.startsWith("data/")).at(-1)!;
    const firstKey = writes.findIndex((k) => k.startsWith("keys/"));
    assert.ok(
      firstKey >= 0 && firstKey < writes.indexOf(lastData),
      "key logs land while data is still written",
    );
  });

  test("CBC connections negotiate encrypt-then-MAC exactly when the manifest says so", () => {
    for (const m of manifest.connections) {
      if (m.tls?.version !== "TLSv1.2") continue;
      const etm = serverHelloExtensions(conns.get(m.connId)!).includes(0x0016);
      assert.equal(etm, m.tls.encryptThenMac === true, `${m.connId} ${m.tls.suite}`);
    }
  });
});

describe("tapsim - determinism", () => {
  test("the same seed gives the same manifest apart from the declared fields", async () => {
    const run = (seed: string) =>
      withTempStore((store) =>
        runSimulation({
          ...SMALL_RUN,
          connections: 16,
          seed,
          dataStore: store,
          keyStore: store,
          concurrency: 8,
        }),
      );
    const a = await run("determinism");
    const b = await run("determinism");
    const c = await run("determinism-2");
    assert.deepEqual(maskNonDeterministic(a.manifest), maskNonDeterministic(b.manifest));
    assert.notDeepEqual(maskNonDeterministic(a.manifest), maskNonDeterministic(c.manifest));
    // The masked fields are the only differences: TLS raw bytes do differ between the runs.
    const tls = a.manifest.connections.findIndex(isTls);
    assert.notEqual(a.manifest.connections[tls]!.c2s.raw.sha256, b.manifest.connections[tls]!.c2s.raw.sha256);
    assert.equal(a.manifest.connections[tls]!.c2s.app.sha256, b.manifest.connections[tls]!.c2s.app.sha256);
  });
});

describe("tapsim - faults", () => {
  test("duplicateBlobs, shuffle and lateKeys", async () => {
    const writes: string[] = [];
    await withTempStore(async (store) => {
      const logged = loggingStore(store, writes);
      const { manifest } = await runSimulation({
        ...SMALL_RUN,
        seed: "tapsim-faults-a",
        dataStore: logged,
        keyStore: logged,
        faults: { duplicateBlobs: true, shuffle: true, lateKeys: true },
      });
      assert.deepEqual(manifest.faults.requested, {
        duplicateBlobs: true,
        shuffle: true,
        gap: false,
        truncateLast: false,
        lateKeys: true,
      });
      const blobs = await readBlobs(store, "");
      const byKey = new Map(blobs.map((b) => [b.key, b]));

      // duplicateBlobs: each copy holds the same records as its original under another sequence number.
      const dups = manifest.faults.duplicateBlobs ?? [];
      assert.ok(dups.length >= 1, "at least one blob was duplicated");
      for (const { key, duplicateOf } of dups) {
        const copy = byKey.get(key)!;
        const original = byKey.get(duplicateOf)!;
        assert.equal(copy.header.tapperId, original.header.tapperId);
        assert.notEqual(copy.header.sequence, original.header.sequence);
        assert.deepEqual(copy.records, original.records);
      }

      // shuffle: a later offset of some stream lands in a blob that sorts before one holding an earlier offset.
      const copies = new Set(dups.map((d) => d.key));
      const inversions = offsetInversions(blobs.filter((b) => !copies.has(b.key)));
      assert.ok(inversions.acrossBlobs > 0, "a later offset sits in an earlier blob");
      assert.ok(inversions.withinBlobs > 0, "neighbours are swapped within blobs");
      assert.ok((manifest.faults.shuffle?.movedRecords ?? 0) > 0, "the manifest counts moved records");

      // Nothing was lost: every stream still reassembles to the manifest's bytes.
      const conns = collectConnections(blobs);
      for (const m of manifest.connections) assertStreamsMatch(m, conns.get(m.connId)!);

      // lateKeys: every key log was written after the last data blob, under a later time.
      const keyWrites = writes.map((k, i) => [k, i] as const).filter(([k]) => k.startsWith("keys/"));
      const lastData = Math.max(...writes.map((k, i) => (k.startsWith("data/") ? i : -1)));
      assert.ok(keyWrites.length >= 2, `${keyWrites.length} key logs`);
      assert.ok(
        keyWrites.every(([, i]) => i > lastData),
        "every key log was written after the last data blob",
      );
      const maxDataEnd = blobs.reduce((m, b) => (b.endNs! > m ? b.endNs! : m), 0n);
      for (const [k] of keyWrites)
        assert.ok(parseBlobKey(k)!.startNs > maxDataEnd, `${k} is named after the data`);
      assert.equal(manifest.faults.lateKeys?.keyTimeNs, parseBlobKey(keyWrites[0]![0])!.startNs.toString());
    });
  });

  test("gap and truncateLast", async () => {
    await withTempStore(async (store) => {
      const { manifest } = await runSimulation({
        ...SMALL_RUN,
        seed: "tapsim-faults-b",
        dataStore: store,
        keyStore: store,
        faults: { gap: true, truncateLast: true },
      });
      const gap = manifest.faults.gap!;
      const cut = manifest.faults.truncateLast!;
      assert.ok(gap && cut, "both faults are in the manifest");
      const blobs = await readBlobs(store, "");

      // truncateLast: the named blob is cut inside its last record, and a reader says so.
      const truncated = blobs.find((b) => b.key === cut.key)!;
      assert.ok(truncated.error instanceof TruncatedFrameError, `got ${truncated.error?.name}`);
      assert.ok(cut.keptBytes < cut.originalBytes, "the blob was cut short");
      assert.equal((await store.stat(cut.key))!.size, cut.keptBytes);
      const entry = manifest.blobs.data.find((b) => b.key === cut.key)!;
      assert.equal(truncated.records.length, entry.records - 1, "every record but the cut one is readable");
      assert.equal(blobs.filter((b) => b.error).length, 1, "only that blob is damaged");

      // The dropped record and the cut one are missing; every other byte of every stream is there.
      const conns = collectConnections(blobs);
      const missing = new Map<string, [number, number][]>();
      const miss = (connId: string, dir: string, offset: number, length: number) =>
        missing.set(`${connId}/${dir}`, [
          ...(missing.get(`${connId}/${dir}`) ?? []),
          [offset, offset + length],
        ]);
      miss(gap.connId, gap.direction, gap.offset, gap.length);
      const cr = cut.cutRecord!;
      if (cr.type === "data") miss(cr.connId, cr.direction!, cr.offset!, cr.length!);
      for (const m of manifest.connections) {
        const conn = conns.get(m.connId)!;
        assertStreamsMatch(m, conn, (dir) => missing.has(`${m.connId}/${dir}`));
        for (const dir of ["c2s", "s2c"] as const) {
          const want = missing.get(`${m.connId}/${dir}`);
          if (!want) continue;
          const got = reassembleStream(conn[dir]);
          // A range missing at the very end is no hole to the reassembler: the stream just ends early.
          const trailing: (readonly [number, number])[] =
            got.length < m[dir].raw.length ? [[got.length, m[dir].raw.length]] : [];
          assert.deepEqual(
            [...got.holes, ...trailing],
            want.sort((a, b) => a[0] - b[0]),
            `${m.connId} ${dir} misses exactly the dropped ranges`,
          );
        }
      }
      const gapConn = manifest.connections.find((c) => c.connId === gap.connId)!;
      assert.equal(gap.direction, "s2c");
      assert.ok(
        gap.offset > 0 && gap.offset + gap.length < gapConn.s2c.raw.length,
        "the gap is inside the stream",
      );
      if (cr.type === "conn-close") assert.equal(conns.get(cr.connId)!.closes.length, 0);
    });
  });
});

describe("tapsim - options", () => {
  test("rejects bad options by name", async () => {
    await withTempStore(async (store) => {
      const base = { dataStore: store, keyStore: store, seed: 1 };
      await assert.rejects(runSimulation({ ...base, connections: 0 }), {
        name: "InvalidSimulationOptionsError",
        option: "connections",
      });
      await assert.rejects(runSimulation({ ...base, connections: 1, tapperIds: ["a", "b", "c"] }), {
        option: "tapperIds",
      });
      await assert.rejects(runSimulation({ ...base, connections: 1, tapperIds: ["gw/1"] }), {
        option: "tapperIds",
      });
      await assert.rejects(runSimulation({ ...base, connections: 1, blobAgeNs: 10n }), {
        option: "blobAgeNs",
      });
    });
  });

  test("an abort stops the run and rejects with the signal's reason", async () => {
    await withTempStore(async (store) => {
      const controller = new AbortController();
      const reason = new Error("stop now");
      let seen = 0;
      const run = runSimulation({
        dataStore: store,
        keyStore: store,
        connections: 400,
        seed: "abort",
        onProgress: (p) => {
          seen = p.completedConnections;
          if (seen === 10) controller.abort(reason);
        },
        signal: controller.signal,
      });
      await assert.rejects(run, (err) => err === reason);
      assert.ok(seen < 400, `stopped after ${seen} connections`);
    });
  });
});
