/**
 * Acceptance on real captures: ingest each capture of the TLS interop corpus into CTAP blobs, stitch them
 * back into a pcapng, and let tshark judge. Per TCP stream and direction the stitched bytes equal the
 * source's (`follow,tcp,raw`); with the key log tshark decrypts the stitched file to the corpus's expected
 * application data (`follow,tls,raw`); and tshark's expert analysis of the stitched file, with checksum
 * validation on, reports no warning or error.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { listBlobs } from "@cloudtap/fetch";
import { ingestCapture } from "@cloudtap/ingest";
import { openStore } from "@cloudtap/object-store";
import { createPcapngEncoder } from "@cloudtap/pcap";
import { byEndpoints, corpusCaptures, corpusDir, expertInfo, followStreams } from "@cloudtap/test-harness";
import { createKeyStore } from "@cloudtap/tls";
import { runStitchJob } from "./stitch-job.js";
import { Stitcher } from "./stitcher.js";
import { createCleartextPortMap } from "./tls-variant.js";

/** What a stitcher must never introduce into complete flows. */
const FORBIDDEN =
  /checksum|not captured|unseen|malformed|out-of-order|retransmission|dup ack|zero window|window full/i;
const CHECKSUMS = [
  "-o",
  "ip.check_checksum:TRUE",
  "-o",
  "tcp.check_checksum:TRUE",
  "-o",
  "udp.check_checksum:TRUE",
];

/** "::1:5649" or "10.0.0.1:443" -> "::1|5649". */
const endpoint = (text: string): string => {
  const i = text.lastIndexOf(":");
  return `${text.slice(0, i)}|${text.slice(i + 1)}`;
};

async function stitchStore(storeDir: string, out: string, keyLog?: string): Promise<Stitcher> {
  const store = openStore(storeDir);
  const encoder = createPcapngEncoder({ linkType: 1 });
  const keys = createKeyStore({ ttlMs: Number.MAX_SAFE_INTEGER });
  if (keyLog !== undefined) keys.addKeyLog(keyLog, 0);
  const stitcher = new Stitcher({
    sink: encoder,
    ...(keyLog === undefined ? {} : { tls: { keys, variant: "cleartext" as const } }),
  });
  const file = createWriteStream(out);
  await runStitchJob({
    blobs: listBlobs(store),
    stitcher,
    output: encoder,
    sink: { write: (c) => void file.write(c) },
  });
  file.end();
  await once(file, "finish");
  return stitcher;
}

describe("stitch - interop corpus, judged by tshark", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-stitch-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const capture of corpusCaptures()) {
    it(`stitch - ${capture.file}: same TCP bytes, same decrypted data, clean expert analysis`, async () => {
      const storeDir = join(dir, capture.file);
      const store = openStore(storeDir);
      const keyLog = capture.keyLogPath ? readFileSync(capture.keyLogPath, "utf8") : undefined;
      await ingestCapture({
        capture: new Uint8Array(readFileSync(capture.path)),
        captureName: capture.file,
        ...(keyLog === undefined ? {} : { keyLog }),
        dataStore: store,
        maxBlobBytes: 4096,
        maxChunkBytes: 1400,
      });
      const out = join(dir, `${capture.file}.stitched.pcapng`);
      const stitcher = await stitchStore(storeDir, out);
      assert.equal(stitcher.table.stats.gaps, 0);

      // 1. The TCP byte streams, per direction.
      const want = byEndpoints(followStreams(capture.path));
      const got = byEndpoints(followStreams(out));
      assert.deepEqual(got, want);

      // 2. Decrypted application data, with the key log the store holds (for the DSB capture: the keys
      //    ingest extracted from its Decryption Secrets Block).
      let keys = "";
      for await (const o of store.list("keys/"))
        keys += new TextDecoder().decode(await store.readBytes(o.key));
      const keyFile = join(dir, `${capture.file}.keys`);
      writeFileSync(keyFile, keys);
      const decodeAs = capture.decodeAs.flatMap((d) => ["-d", d]);
      const tls = byEndpoints(followStreams(out, { layer: "tls", keyLogFile: keyFile, extra: decodeAs }));
      const expected = JSON.parse(
        readFileSync(`${corpusDir()}expected/${capture.file}.expected.json`, "utf8"),
      ) as {
        streams: {
          client: string;
          server: string;
          c2s: { sha256: string; bytes: number };
          s2c: { sha256: string; bytes: number };
        }[];
      };
      for (const s of expected.streams) {
        const c = endpoint(s.client);
        const srv = endpoint(s.server);
        assert.deepEqual(
          tls.get(`${c}>${srv}`),
          { bytes: s.c2s.bytes, sha256: s.c2s.sha256 },
          `${s.client} -> ${s.server}`,
        );
        assert.deepEqual(
          tls.get(`${srv}>${c}`),
          { bytes: s.s2c.bytes, sha256: s.s2c.sha256 },
          `${s.server} -> ${s.client}`,
        );
      }

      // 3. Expert analysis with checksum validation on: none of the defects a stitcher can introduce, and no
      //    warning or error the source capture does not have itself (RSTs and QUIC keys are the source's).
      const judge = [...CHECKSUMS, ...decodeAs, "-o", `tls.keylog_file:${keyFile}`];
      const serious = (path: string) =>
        expertInfo(path, judge).filter((e) => e.severity === "Errors" || e.severity === "Warnings");
      const stitched = serious(out);
      for (const e of stitched) {
        // QUIC's own decryption notes (the source's UDP flow) are not packet defects.
        if (e.group !== "Decryption")
          assert.doesNotMatch(e.summary, FORBIDDEN, `${e.severity}: ${e.summary}`);
      }
      const source = new Set(serious(capture.path).map((e) => `${e.protocol}: ${e.summary}`));
      for (const e of stitched)
        assert.ok(source.has(`${e.protocol}: ${e.summary}`), `new in the stitched file: ${e.summary}`);

      // 4. The cleartext variant: per stream and direction, the cleartext flow's TCP bytes are exactly the
      //    application data tshark decrypts from the source (the corpus's expected hashes).
      const clearFile = join(dir, `${capture.file}.cleartext.pcapng`);
      const clear = await stitchStore(storeDir, clearFile, keys);
      const clearStreams = byEndpoints(followStreams(clearFile));
      const portMap = createCleartextPortMap();
      let decrypted = 0;
      for (const s of expected.streams) {
        if (s.c2s.bytes + s.s2c.bytes === 0) continue; // no application data: no cleartext flow
        decrypted++;
        const c = endpoint(s.client);
        const [srvAddr, srvPort] = endpoint(s.server).split("|") as [string, string];
        const srv = `${srvAddr}|${portMap(Number(srvPort))}`;
        assert.deepEqual(
          clearStreams.get(`${c}>${srv}`),
          { bytes: s.c2s.bytes, sha256: s.c2s.sha256 },
          `cleartext ${s.client} -> ${s.server}`,
        );
        assert.deepEqual(
          clearStreams.get(`${srv}>${c}`),
          { bytes: s.s2c.bytes, sha256: s.s2c.sha256 },
          `cleartext ${s.server} -> ${s.client}`,
        );
      }
      assert.equal(clear.stats.tls.cleartextFlows, decrypted, JSON.stringify(clear.stats.tls.outcomes));
    });
  }
});
