/**
 * A shuffled store (the simulator's `shuffle` fault: records moved into the blob before theirs, neighbours of
 * a stream swapped inside a blob), stitched to the original variant with the keys embedded, judged by tshark:
 * - every TLS connection decrypts through the pcapng's own secrets blocks, both directions, to the manifest's
 *   application bytes, and every request of the manifest is there (HTTP/1.1 and HTTP/2). When a hole of one
 *   direction is filled, its bytes come out of the flow table at once; written before the other direction's
 *   earlier records (not read yet), a client's Finished came before the server's ServerHello, and tshark
 *   never took the client's application keys;
 * - per flow, no packet is stamped before a packet whose bytes it acknowledges.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listBlobs, sortBlobsByTime } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";
import { createPcapngEncoder } from "@cloudtap/pcap";
import { keysPrefix } from "@cloudtap/tap-format";
import { runSimulation } from "@cloudtap/tapsim";
import { byEndpoints, followStreams, tshark } from "@cloudtap/test-harness";
import { createKeyStore } from "@cloudtap/tls";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";

const CONNECTIONS = Number(process.env["STITCH_SHUFFLE_CONNECTIONS"] ?? 80);

/** Decimal seconds as tshark prints frame.time_epoch, in ns. */
function epochNs(text: string): bigint {
  const [s, f = ""] = text.split(".");
  return BigInt(s!) * 1_000_000_000n + BigInt((f + "000000000").slice(0, 9));
}

/**
 * Per TCP flow and direction, when each byte was first sent; every ACK is checked against the other side:
 * the packet that sent the last byte it acknowledges must not be stamped after the ACK. Returns the
 * violations, as text (at most 20).
 */
function acksBeforeTheirData(file: string): { acks: number; violations: string[] } {
  const lines = tshark([
    "-n",
    "-r",
    file,
    "-Y",
    "tcp",
    "-T",
    "fields",
    ...["tcp.stream", "frame.number", "frame.time_epoch", "tcp.srcport", "tcp.dstport"].flatMap((f) => [
      "-e",
      f,
    ]),
    ...["tcp.seq", "tcp.nxtseq", "tcp.ack", "tcp.flags.ack", "tcp.flags.syn", "tcp.flags.fin"].flatMap(
      (f) => ["-e", f],
    ),
  ]).split("\n");
  type Sent = { end: number; ns: bigint; frame: string };
  const sent = new Map<string, Sent[]>(); // "stream sport>dport" -> segments in file order
  const acks: { key: string; ack: number; ns: bigint; frame: string }[] = [];
  for (const line of lines) {
    if (line.trim() === "") continue;
    const [stream, frame, time, sport, dport, seq, nxtseq, ack, isAck, syn, fin] = line.split("\t");
    const ns = epochNs(time!);
    let end = Number(nxtseq || seq);
    if (syn === "1" || fin === "1") end = Math.max(end, Number(seq) + 1);
    const key = `${stream} ${sport}>${dport}`;
    const list = sent.get(key) ?? [];
    list.push({ end, ns, frame: frame! });
    sent.set(key, list);
    if (isAck === "1" && syn !== "1")
      acks.push({ key: `${stream} ${dport}>${sport}`, ack: Number(ack), ns, frame: frame! });
  }
  const violations: string[] = [];
  for (const a of acks) {
    // The first segment of the other side that reaches the acknowledged number sent its last byte (a
    // direction's segments end ever further: no retransmissions are made).
    const list = sent.get(a.key) ?? [];
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.end >= a.ack) hi = mid;
      else lo = mid + 1;
    }
    const by = list[lo];
    if (by === undefined) violations.push(`frame ${a.frame} acknowledges ${a.ack}, never sent (${a.key})`);
    else if (by.ns > a.ns)
      violations.push(`frame ${a.frame} (${a.ns}) acknowledges frame ${by.frame}, stamped later (${by.ns})`);
  }
  return { acks: acks.length, violations: violations.slice(0, 20) };
}

describe("stitch - a shuffled store: TLS handshakes in cause-and-effect order", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-stitch-shuffle-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("stitch - shuffled records: tshark decrypts every TLS flow and its requests through the embedded keys; ACKs never precede their data", async () => {
    const store = openStore(join(dir, "store"));
    const { manifest } = await runSimulation({
      dataStore: store,
      keyStore: store,
      connections: CONNECTIONS,
      seed: 5,
      blobSize: 64 * 1024,
      faults: { shuffle: true },
    });
    assert.ok((manifest.faults.shuffle?.movedRecords ?? 0) > 0, "the fault moved records");
    const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
    for await (const o of store.list(keysPrefix(""))) keys.addKeyLog(await store.readBytes(o.key), 0);
    const listed = [];
    for await (const b of listBlobs(store)) listed.push(b);
    const encoder = createPcapngEncoder({ linkType: 1 });
    const stitcher = new Stitcher({
      sink: encoder,
      tls: { keys, variant: "original", embedKeys: (text) => encoder.writeTlsKeyLog(text) },
    });
    const file = join(dir, "original.pcapng");
    const out = createWriteStream(file);
    await runStitchJob({
      blobs: (async function* () {
        yield* sortBlobsByTime(listed);
      })(),
      stitcher,
      output: encoder,
      sink: { write: (c) => void out.write(c) },
    });
    out.end();
    await once(out, "finish");

    const tlsConns = manifest.connections.filter((c) => c.tls !== null);
    assert.ok(tlsConns.length > CONNECTIONS / 3, `${tlsConns.length} TLS connections`);
    const decrypted = byEndpoints(followStreams(file, { layer: "tls" }));
    const wrong: string[] = [];
    for (const c of tlsConns) {
      const client = `${c.client.address}|${c.client.port}`;
      const server = `${c.server.address}|${c.server.port}`;
      const c2s = decrypted.get(`${client}>${server}`);
      const s2c = decrypted.get(`${server}>${client}`);
      if (c2s?.sha256 !== c.c2s.app.sha256 || s2c?.sha256 !== c.s2c.app.sha256)
        wrong.push(
          `${c.connId} ${client}: c2s ${c2s?.bytes ?? 0}/${c.c2s.app.length}, s2c ${s2c?.bytes ?? 0}/${c.s2c.app.length}`,
        );
    }
    assert.deepEqual(wrong, [], "TLS flows tshark does not decrypt to the manifest's bytes");

    // Requests tshark reads in the decrypted original flows, per client: HTTP/1.1 and HTTP/2 (:method).
    const requests = new Map<string, number>();
    for (const line of tshark([
      "-n",
      "-2",
      "-r",
      file,
      "-Y",
      "tls && (http.request || http2.headers.method)",
      "-T",
      "fields",
      "-E",
      "occurrence=a",
      ...["ip.src", "ipv6.src", "tcp.srcport", "http.request.method", "http2.headers.method"].flatMap((f) => [
        "-e",
        f,
      ]),
    ]).split("\n")) {
      if (line.trim() === "") continue;
      const [src4, src6, sport, h1, h2] = line.split("\t");
      const n = [h1, h2]
        .map((m) => (m ?? "").split(",").filter((x) => x !== "").length)
        .reduce((a, b) => a + b);
      const client = `${src4 || src6}|${sport}`;
      requests.set(client, (requests.get(client) ?? 0) + n);
    }
    let total = 0;
    const missing: string[] = [];
    for (const c of tlsConns) {
      const client = `${c.client.address}|${c.client.port}`;
      if ((requests.get(client) ?? 0) !== c.http.length)
        missing.push(`${c.connId} ${client} ${c.protocol}: ${requests.get(client) ?? 0} of ${c.http.length}`);
      total += c.http.length;
    }
    assert.deepEqual(missing, [], "TLS flows whose requests tshark does not read");
    assert.ok(total > CONNECTIONS, `${total} requests`);

    const causal = acksBeforeTheirData(file);
    assert.ok(causal.acks > 1000, `${causal.acks} ACKs`);
    assert.deepEqual(causal.violations, [], "ACKs stamped before the data they acknowledge");
    // Bytes released ahead of the reading were held for the other direction (the case this test is about).
    assert.ok(stitcher.stats.heldEvents > 0, "events held for the other direction");
  });
});
