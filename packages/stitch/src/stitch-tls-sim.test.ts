/**
 * Acceptance of TLS decryption and the cleartext variant on simulated traffic, judged by tshark:
 * - every TLS connection decrypts and its cleartext flow carries exactly the manifest's application bytes per
 *   direction, also when the key logs landed after the data;
 * - with --variant both, tshark without any key log finds every HTTP/1.1 request of the manifest in the
 *   cleartext flows, and the original flows still decrypt through the pcapng's own secrets blocks.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listBlobs, listKeyLogs, sortBlobsByTime } from "@cloudtap/fetch";
import { type ObjectStore, openStore } from "@cloudtap/object-store";
import { createPcapngEncoder, readCapture } from "@cloudtap/pcap";
import { keysPrefix } from "@cloudtap/tap-format";
import { runSimulation, type SimulationFaults, type SimulationManifest } from "@cloudtap/tapsim";
import { byEndpoints, followStreams, tshark } from "@cloudtap/test-harness";
import { createKeyStore } from "@cloudtap/tls";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";
import { createCleartextPortMap, type Variant } from "./tls-variant.js";

const CONNECTIONS = Number(process.env["STITCH_TLS_CONNECTIONS"] ?? 80);
const portMap = createCleartextPortMap();

async function loadKeys(store: ObjectStore, edit: (text: string) => string = (t) => t) {
  const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
  for await (const o of store.list(keysPrefix("")))
    keys.addKeyLog(edit(new TextDecoder().decode(await store.readBytes(o.key))), 0);
  return keys;
}

/**
 * `keysAsTheyLand`: key logs are not loaded up front but met in time order among the data blobs, as a
 * continuous stitcher meets them; connections that end before their keys wait for them.
 */
async function run(
  dir: string,
  name: string,
  variant: Variant,
  faults: SimulationFaults,
  keysAsTheyLand = false,
  options: { connections?: number; editKeyLog?: (text: string) => string } = {},
) {
  const store = openStore(join(dir, name));
  const { manifest } = await runSimulation({
    dataStore: store,
    keyStore: store,
    connections: options.connections ?? CONNECTIONS,
    seed: 21,
    blobSize: 256 * 1024,
    faults,
  });
  const keys = keysAsTheyLand
    ? createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER })
    : await loadKeys(store, options.editKeyLog);
  const listed = [];
  for await (const b of listBlobs(store)) listed.push(b);
  if (keysAsTheyLand) for await (const k of listKeyLogs(store)) listed.push(k);
  const encoder = createPcapngEncoder({ linkType: 1 });
  const stitcher = new Stitcher({
    sink: encoder,
    tls: { keys, variant, embedKeys: (text) => encoder.writeTlsKeyLog(text) },
  });
  const file = join(dir, `${name}.pcapng`);
  const out = createWriteStream(file);
  await runStitchJob({
    blobs: (async function* () {
      yield* sortBlobsByTime(listed);
    })(),
    stitcher,
    output: encoder,
    sink: { write: (c) => void out.write(c) },
    onKeyLog: (_key, text) => void keys.addKeyLog(text, 0),
  });
  out.end();
  await once(out, "finish");
  return { manifest, file, stitcher };
}

function tlsConnections(m: SimulationManifest) {
  return m.connections.filter((c) => c.tls !== null);
}

function assertCleartextMatches(m: SimulationManifest, file: string): void {
  const got = byEndpoints(followStreams(file));
  for (const c of tlsConnections(m)) {
    const client = `${c.client.address}|${c.client.port}`;
    const server = `${c.server.address}|${portMap(c.server.port)}`;
    assert.deepEqual(
      got.get(`${client}>${server}`),
      { bytes: c.c2s.app.length, sha256: c.c2s.app.sha256 },
      `${c.connId} c2s`,
    );
    assert.deepEqual(
      got.get(`${server}>${client}`),
      { bytes: c.s2c.app.length, sha256: c.s2c.app.sha256 },
      `${c.connId} s2c`,
    );
  }
}

/**
 * HTTP/2 in a `both` file, judged per frame, not per packet: each original flow (decrypted through its
 * Decryption Secrets Block) and its cleartext twin carry the same HTTP/2 frames (type and stream id, in
 * order, per direction), and each carries every request of the manifest. Packets are not comparable: the
 * twin packs the same frames into other segments. tshark runs in two passes (-2): on the twin's port 80 it
 * knows HTTP/2 only from the client's preface, so a server that spoke first (its SETTINGS and WINDOW_UPDATE
 * right after a TLS 1.2 handshake) would have those frames undissected in one pass (docs/stitching.md).
 */
function assertHttp2TwinsAgree(m: SimulationManifest, file: string): void {
  const h2 = new Map(
    m.connections
      .filter((c) => c.protocol === "https-h2")
      .map((c) => [`${c.client.address}|${c.client.port}`, c]),
  );
  assert.ok(h2.size > 0, "the store has HTTP/2 connections");
  /** "client original|cleartext c2s|s2c" -> frames as "type:stream", in order; and requests (:method). */
  const frames = new Map<string, string[]>();
  const requests = new Map<string, number>();
  const lines = tshark([
    "-n",
    "-2",
    "-r",
    file,
    "-o",
    "tls.keylog_file:",
    "-Y",
    "http2",
    "-T",
    "fields",
    "-E",
    "occurrence=a",
    ...["ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport"].flatMap((f) => ["-e", f]),
    ...["http2.type", "http2.streamid", "http2.headers.method"].flatMap((f) => ["-e", f]),
  ]).split("\n");
  for (const line of lines) {
    if (line.trim() === "") continue;
    const [src4, src6, sport, dst4, dst6, dport, types, ids, methods] = line.split("\t");
    const src = `${src4 || src6}|${sport}`;
    const dst = `${dst4 || dst6}|${dport}`;
    const c2s = h2.has(src);
    const c = h2.get(c2s ? src : dst);
    if (c === undefined) continue;
    const serverPort = Number(c2s ? dport : sport);
    const variant =
      serverPort === c.server.port ? "original" : serverPort === portMap(c.server.port) ? "cleartext" : "?";
    const key = `${c2s ? src : dst} ${variant} ${c2s ? "c2s" : "s2c"}`;
    const typeList = (types ?? "").split(",").filter((t) => t !== "");
    const idList = (ids ?? "").split(",");
    const list = frames.get(key) ?? [];
    for (const [i, t] of typeList.entries()) list.push(`${t}:${idList[i]}`);
    frames.set(key, list);
    const n = (methods ?? "").split(",").filter((x) => x !== "").length;
    requests.set(key, (requests.get(key) ?? 0) + n);
  }
  let total = 0;
  for (const [client, c] of h2) {
    for (const dir of ["c2s", "s2c"]) {
      const original = frames.get(`${client} original ${dir}`) ?? [];
      assert.ok(original.length > 0, `${c.connId} ${dir}: HTTP/2 frames in the original flow`);
      assert.deepEqual(
        frames.get(`${client} cleartext ${dir}`),
        original,
        `${c.connId} ${dir}: the same frames`,
      );
    }
    for (const variant of ["original", "cleartext"])
      assert.equal(
        requests.get(`${client} ${variant} c2s`),
        c.http.length,
        `${c.connId}: ${variant} requests`,
      );
    total += c.http.length;
  }
  assert.ok(total > 0, `${total} HTTP/2 requests`);
}

describe("stitch - TLS decryption and the cleartext variant on simulated traffic", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-stitch-tls-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const lateKeys of [false, true]) {
    it(`stitch - --variant cleartext${lateKeys ? ", keys landing after the data" : ""}: every TLS connection decrypts to the manifest's application bytes`, async () => {
      const { manifest, file, stitcher } = await run(
        dir,
        `clear-${lateKeys}`,
        "cleartext",
        lateKeys ? { lateKeys: true } : {},
        lateKeys,
      );
      const tls = tlsConnections(manifest).length;
      assert.ok(tls > CONNECTIONS / 3, `${tls} TLS connections`);
      // With late keys every TLS connection waited for its keys and was decrypted when they landed.
      assert.equal(
        stitcher.stats.tls.outcomes[lateKeys ? "keys-late" : "decrypted"],
        tls,
        JSON.stringify(stitcher.stats.tls.outcomes),
      );
      if (lateKeys)
        assert.ok(stitcher.stats.tls.waitedForKeys > 0, "connections ended before their keys landed");
      assert.equal(stitcher.stats.tls.cleartextFlows, tls);
      assertCleartextMatches(manifest, file);
      // Non-TLS flows (plain HTTP) pass through unchanged.
      const got = byEndpoints(followStreams(file));
      for (const c of manifest.connections.filter((x) => x.transport === "tcp" && x.tls === null)) {
        const key = `${c.client.address}|${c.client.port}>${c.server.address}|${c.server.port}`;
        assert.deepEqual(got.get(key), { bytes: c.c2s.raw.length, sha256: c.c2s.raw.sha256 }, c.connId);
      }
    });
  }

  it("stitch - --variant both: HTTP requests readable without keys, originals decrypt through the embedded secrets", async () => {
    const { manifest, file, stitcher } = await run(dir, "both", "both", {});
    // Every HTTP/1.1 request of the manifest (TLS and plain) is visible as an HTTP request with no key log.
    const want = manifest.connections
      .filter((c) => c.protocol === "https-h1" || c.protocol === "http")
      .reduce((n, c) => n + c.http.length, 0);
    const requests = tshark([
      "-n",
      "-r",
      file,
      "-o",
      "tls.keylog_file:",
      "-Y",
      "http.request && !tls",
      "-T",
      "fields",
      "-e",
      "tcp.dstport",
    ])
      .trim()
      .split("\n")
      .filter((l) => l !== "");
    assert.equal(requests.length, want, "HTTP/1.1 requests in the cleartext flows");
    assert.ok(
      requests.every((p) => p === "80" || p === "8080"),
      `ports ${[...new Set(requests)]}`,
    );
    // The original flows decrypt with the pcapng's own Decryption Secrets Blocks.
    const tls = byEndpoints(followStreams(file, { layer: "tls" }));
    for (const c of tlsConnections(manifest)) {
      const client = `${c.client.address}|${c.client.port}`;
      const server = `${c.server.address}|${c.server.port}`;
      assert.deepEqual(
        tls.get(`${client}>${server}`),
        { bytes: c.c2s.app.length, sha256: c.c2s.app.sha256 },
        `${c.connId} c2s`,
      );
      assert.deepEqual(
        tls.get(`${server}>${client}`),
        { bytes: c.s2c.app.length, sha256: c.s2c.app.sha256 },
        `${c.connId} s2c`,
      );
    }
    assert.equal(stitcher.stats.tls.keysEmbedded, tlsConnections(manifest).length);
    assertHttp2TwinsAgree(manifest, file);
  });

  it("stitch - wrong keys and a client random logged twice: named per connection, only keys that decrypt are embedded", async () => {
    /** Flips the first hex digit of every secret of `random`'s lines (a wrong key, same shape). */
    const spoil = (line: string) =>
      line.replace(/^(\S+ \S+ )(\S)/, (_m, head: string, c: string) => head + (c === "0" ? "1" : "0"));
    let wrong = "";
    let twice = "";
    const { manifest, file, stitcher } = await run(dir, "wrong-keys", "both", {}, false, {
      connections: 24,
      editKeyLog: (text) => {
        const lines = text.split("\n").filter((l) => /^[A-Z_0-9]+ [0-9a-f]{64} /i.test(l));
        const randoms = [...new Set(lines.map((l) => l.split(" ")[1]!.toLowerCase()))];
        if (!wrong) [wrong, twice] = randoms as [string, string];
        const mine = (r: string) => lines.filter((l) => l.split(" ")[1]!.toLowerCase() === r);
        // `wrong`: every secret spoiled. `twice`: a spoiled copy of its lines first, the right ones after.
        const others = lines.filter((l) => !mine(wrong).includes(l) && !mine(twice).includes(l));
        return [...mine(wrong).map(spoil), ...mine(twice).map(spoil), ...mine(twice), ...others].join("\n");
      },
    });
    const byRandom = new Map(tlsConnections(manifest).map((c) => [c.tls!.clientRandom.toLowerCase(), c]));
    const wrongConn = byRandom.get(wrong)!;
    const twiceConn = byRandom.get(twice)!;
    assert.ok(wrongConn && twiceConn, "both client randoms belong to tapped connections");
    const t = stitcher.stats.tls;
    const listed = new Map(t.connections.map((c) => [c.connId, c]));
    assert.deepEqual(
      { ...listed.get(wrongConn.connId), detail: undefined },
      {
        connId: wrongConn.connId,
        flow: `${wrongConn.client.address}:${wrongConn.client.port} -> ${wrongConn.server.address}:${wrongConn.server.port}`,
        outcome: "integrity-failure",
        detail: undefined,
        candidatesRejected: 0,
      },
    );
    assert.equal(listed.get(twiceConn.connId)?.outcome, "candidate-rejected");
    assert.equal(listed.get(twiceConn.connId)?.candidatesRejected, 1);
    assert.equal(t.connections.length, 2, JSON.stringify(t.connections));
    assert.equal(t.outcomes["integrity-failure"], 1);
    assert.equal(t.candidateRejections, 1);
    assert.equal(t.keysEmbedded, tlsConnections(manifest).length - 1, "every connection but the wrong one");
    assert.equal(t.keysNotEmbedded, 1);
    // The file's Decryption Secrets Blocks: nothing of the wrong connection, the right set of the other.
    let dsb = "";
    for await (const item of readCapture(readFileSync(file)))
      if (item.type === "tls-key-log") dsb += item.text;
    assert.ok(!dsb.includes(wrong), "keys that did not decrypt are not embedded");
    const twiceLines = dsb.split("\n").filter((l) => l.includes(twice));
    assert.ok(twiceLines.length > 0);
    const keyLogText = (await loadKeyLogText(join(dir, "wrong-keys"))).split("\n");
    for (const l of twiceLines) assert.ok(keyLogText.includes(l), `embedded as logged: ${l.slice(0, 40)}`);
    // The twice-logged connection decrypts to its application bytes (its cleartext flow), the wrong one not.
    const got = byEndpoints(followStreams(file));
    const clearKey = (c: typeof twiceConn) =>
      `${c.client.address}|${c.client.port}>${c.server.address}|${portMap(c.server.port)}`;
    assert.deepEqual(got.get(clearKey(twiceConn)), {
      bytes: twiceConn.c2s.app.length,
      sha256: twiceConn.c2s.app.sha256,
    });
    assert.equal(got.get(clearKey(wrongConn)), undefined);
  });
});

async function loadKeyLogText(path: string): Promise<string> {
  const store = openStore(path);
  let all = "";
  for await (const o of store.list(keysPrefix("")))
    all += new TextDecoder().decode(await store.readBytes(o.key));
  return all;
}
