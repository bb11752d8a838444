// Acceptance: for every capture of the TLS interop corpus, the TCP byte streams that ingest stores are the
// ones tshark's "Follow TCP Stream" reports, byte for byte, per connection and direction.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { Transport } from "@cloudtap/tap-format";
import { corpusDir, followStreams } from "@cloudtap/test-harness";
import { ingestCapture } from "./ingest.js";
import { joinDirection, readBack, withTempStore } from "./test-support.js";

const corpus = pathToFileURL(corpusDir());
const manifest = JSON.parse(readFileSync(new URL("manifest.json", corpus), "utf8")) as {
  captures: { file: string; keylog: string | null }[];
};

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe("ingest-tshark", () => {
  const files = readdirSync(new URL("captures/", corpus)).sort();
  it("ingest-tshark - the corpus is all here", () => {
    assert.equal(files.length, 24);
    assert.deepEqual(
      new Set(files),
      new Set(manifest.captures.map((c) => c.file.replace(/^captures\//, ""))),
    );
  });

  for (const file of files) {
    it(`ingest-tshark - ${file}: per-connection, per-direction SHA-256 equals tshark follow,tcp,raw`, async () => {
      const path = new URL(`captures/${file}`, corpus).pathname;
      const entry = manifest.captures.find((c) => c.file === `captures/${file}`)!;
      const keyLog = entry.keylog ? readFileSync(new URL(entry.keylog, corpus), "utf8") : undefined;
      const expected = followStreams(path);

      await withTempStore(async (store) => {
        const bytes = readFileSync(path);
        async function* chunks(): AsyncGenerator<Uint8Array> {
          for (let i = 0; i < bytes.length; i += 4096) yield bytes.subarray(i, i + 4096);
        }
        const summary = await ingestCapture({
          capture: chunks(),
          captureName: file,
          ...(keyLog !== undefined ? { keyLog } : {}),
          dataStore: store,
          // Small blobs and chunks so every capture spans several blobs and records.
          maxBlobBytes: 4096,
          maxChunkBytes: 1500,
        });
        assert.equal(summary.skipped.malformed, 0);
        assert.equal(summary.tcp.gapBytes, 0);
        assert.equal(summary.connections.tcp, expected.length, "one connection per tshark stream");
        assert.ok(
          summary.keyLogs.length ===
            (keyLog !== undefined ? 1 : 0) + (file.endsWith("with-secrets.pcapng") ? 1 : 0),
        );

        const conns = [...(await readBack(store)).values()];
        const tcp = conns.filter((c) => c.open.transport === Transport.Tcp);
        assert.equal(tcp.length, expected.length);
        const used = new Set<string>();
        for (const want of expected) {
          const endpoints = (c: (typeof tcp)[number]): [string, string] => [
            `${c.open.client.address}|${c.open.client.port}`,
            `${c.open.server.address}|${c.open.server.port}`,
          ];
          const match = tcp.filter((c) => {
            const [client, server] = endpoints(c);
            return (
              (client === want.nodes[0] && server === want.nodes[1]) ||
              (client === want.nodes[1] && server === want.nodes[0])
            );
          });
          assert.equal(
            match.length,
            1,
            `stream ${want.stream} (${want.nodes.join(" <-> ")}) maps to one connection`,
          );
          const conn = match[0]!;
          used.add(conn.open.connId);
          const node0IsClient = endpoints(conn)[0] === want.nodes[0];
          const c2s = joinDirection(conn.data[0]);
          const s2c = joinDirection(conn.data[1]);
          const got0 = node0IsClient ? c2s : s2c;
          const got1 = node0IsClient ? s2c : c2s;
          assert.equal(got0.gaps, 0);
          assert.equal(got1.gaps, 0);
          assert.deepEqual(
            {
              node0: { bytes: got0.bytes.length, sha256: sha256(got0.bytes) },
              node1: { bytes: got1.bytes.length, sha256: sha256(got1.bytes) },
            },
            {
              node0: { bytes: want.bytes[0], sha256: want.sha256[0] },
              node1: { bytes: want.bytes[1], sha256: want.sha256[1] },
            },
            `stream ${want.stream}`,
          );
          assert.ok(conn.close, `stream ${want.stream} has a conn-close`);
          assert.equal(conn.close.bytesClientToServer, c2s.bytes.length);
          assert.equal(conn.close.bytesServerToClient, s2c.bytes.length);
        }
        assert.equal(used.size, tcp.length);
      });
    });
  }
});
