// Acceptance: for every capture of the TLS interop corpus, the TCP byte streams that ingest stores are the
// ones tshark's "Follow TCP Stream" reports, byte for byte, per connection and direction.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { Transport } from "@cloudtap/tap-format";
import { corpusDir } from "@cloudtap/test-harness";
import { ingestCapture } from "./ingest.js";
import { joinDirection, readBack, withTempStore } from "./test-support.js";

const corpus = pathToFileURL(corpusDir());
const manifest = JSON.parse(readFileSync(new URL("manifest.json", corpus), "utf8")) as {
  captures: { file: string; keylog: string | null }[];
};

function tshark(args: string[]): string {
  try {
    return execFileSync("tshark", args, {
      encoding: "utf8",
      maxBuffer: 64 << 20,
      stdio: ["ignore", "pipe", "ignore"],
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(
        "tshark is not on PATH: this acceptance test needs it. Run ./scripts/bootstrap.sh to install it.",
        { cause: err },
      );
    }
    throw err;
  }
}

interface TsharkStream {
  readonly stream: number;
  /** "address|port" of tshark's node 0 and node 1. */
  readonly nodes: [string, string];
  readonly sha256: [string, string];
  readonly bytes: [number, number];
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** "[2001:db8::1]:443" or "10.0.0.1:443" -> "2001:db8::1|443". */
function node(text: string): string {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(text.trim());
  if (m === null) throw new Error(`unexpected tshark node "${text}"`);
  return `${m[1]}|${m[2]}`;
}

/**
 * Runs tshark's Follow TCP Stream (raw) for every stream of the capture. In that output each chunk is a
 * line of hex; lines of node 1 start with a tab.
 */
function tsharkStreams(path: string): TsharkStream[] {
  const fields = tshark([
    "-n",
    "-r",
    path,
    "-Y",
    "tcp",
    "-T",
    "fields",
    "-E",
    "separator=,",
    "-e",
    "tcp.stream",
    "-e",
    "ip.src",
    "-e",
    "ipv6.src",
    "-e",
    "tcp.srcport",
    "-e",
    "ip.dst",
    "-e",
    "ipv6.dst",
    "-e",
    "tcp.dstport",
  ]);
  const firstPacket = new Map<number, [string, string]>();
  for (const line of fields.split("\n")) {
    if (line.trim() === "") continue;
    const [stream, src4, src6, sport, dst4, dst6, dport] = line.split(",");
    const n = Number(stream);
    if (!firstPacket.has(n)) firstPacket.set(n, [`${src4 || src6}|${sport}`, `${dst4 || dst6}|${dport}`]);
  }
  const ids = [...firstPacket.keys()].sort((a, b) => a - b);
  if (ids.length === 0) return [];
  const out = tshark(["-n", "-r", path, "-q", ...ids.flatMap((n) => ["-z", `follow,tcp,raw,${n}`])]);
  const streams: TsharkStream[] = [];
  for (const section of out.split(/^=+$/m)) {
    const filter = /^Filter: tcp\.stream eq (\d+)$/m.exec(section);
    if (filter === null) continue;
    const stream = Number(filter[1]);
    const node0 = /^Node 0: (.*)$/m.exec(section)?.[1] ?? "";
    const node1 = /^Node 1: (.*)$/m.exec(section)?.[1] ?? "";
    const parts: [Uint8Array[], Uint8Array[]] = [[], []];
    for (const line of section.split("\n")) {
      const m = /^(\t?)([0-9a-f]+)$/.exec(line);
      if (m === null) continue;
      parts[m[1] === "\t" ? 1 : 0].push(Uint8Array.from(Buffer.from(m[2]!, "hex")));
    }
    // A stream without payload has no nodes in the follow output ("Node 0: :0"): take its endpoints
    // from its first packet.
    const nodes: [string, string] = node0 === ":0" ? firstPacket.get(stream)! : [node(node0), node(node1)];
    const joined = parts.map((p) => Buffer.concat(p)) as [Buffer, Buffer];
    streams.push({
      stream,
      nodes,
      sha256: [sha256(joined[0]), sha256(joined[1])],
      bytes: [joined[0].length, joined[1].length],
    });
  }
  assert.equal(streams.length, ids.length, "tshark printed one follow section per stream");
  return streams.sort((a, b) => a.stream - b.stream);
}

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
      const expected = tsharkStreams(path);

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
