import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { openStore } from "@cloudtap/object-store";
import type { FrameSink } from "@cloudtap/packet";
import { type CaptureItem, readCapture } from "@cloudtap/pcap";
import { createCaptureFileOutput } from "./capture-file-output.js";
import { createEgress } from "./egress.js";
import { isEgressError } from "./errors.js";
import { createExportPolicy } from "./export-policy.js";
import { createRotatingFileOutput } from "./rotating-file-output.js";
import { flowContext, framesOf, MemoryTransport } from "./test-frames.js";
import { TunnelOutput } from "./tunnel-output.js";
import { parseVxlan } from "./vxlan.js";

const T0 = 1_764_064_800_000_000_000n; // 2025-11-25T10:00:00Z

async function items(path: string): Promise<CaptureItem[]> {
  const out: CaptureItem[] = [];
  for await (const i of readCapture(readFileSync(path)))
    out.push(i.type === "packet" ? { ...i, data: Uint8Array.from(i.data) } : i);
  return out;
}

function put(sink: FrameSink, frame: Uint8Array, ts: bigint): void {
  sink.begin(frame.length).set(frame);
  sink.commit(ts);
}

/** What runStitchJob does with an output: drain and write as it goes, flush at the end. */
async function pass(out: {
  drain(): Uint8Array[];
  write(c: Uint8Array): void | Promise<void>;
}): Promise<void> {
  for (const c of out.drain()) await out.write(c);
}

describe("egress - file outputs and the fan-out", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-egress-files-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("egress - one frame to a pcapng file and a remapping tunnel: the file keeps the original addresses", async () => {
    const path = join(dir, "fanout.pcapng");
    const file = createCaptureFileOutput({ path, format: "pcapng", embedKeys: true });
    const transport = new MemoryTransport();
    const tunnel = new TunnelOutput({
      policy: createExportPolicy({
        targets: [{ kind: "vxlan", address: "10.0.0.1" }],
        remap: { client: "100.64.0.0/10" },
      }),
      transport,
    });
    // The tunnel first: the frame is built in its slab, and copied to the file before the remap rewrites it.
    const egress = createEgress([tunnel, file]);
    assert.equal(egress.embedsKeys, true, "the pcapng embeds keys");
    const flow = flowContext();
    const sink = egress.forFlow(flow);
    const [c2s, s2c] = framesOf(flow, new Uint8Array(50).fill(3));
    put(sink, c2s, T0);
    egress.embedKeys("CLIENT_RANDOM 00 11\n");
    put(sink, s2c, T0 + 1000n);
    for (const c of egress.flush()) await egress.write(c);
    assert.throws(
      () => egress.write(new Uint8Array(4)),
      isEgressError,
      "a chunk the egress did not hand out",
    );
    // The file stream opens asynchronously: give it a moment, then look.
    for (let i = 0; i < 100 && !existsSync(`${path}.partial`); i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.ok(
      existsSync(`${path}.partial`) && !existsSync(path),
      "written under a temporary name until closed",
    );
    await egress.close();
    assert.ok(existsSync(path), "renamed when closed");
    assert.equal(statSync(path).mode & 0o777, 0o600, "mode 0600: it embeds keys");
    const got = await items(path);
    assert.deepEqual(
      got.map((i) => i.type),
      ["packet", "tls-key-log", "packet"],
      "packets and the keys in order",
    );
    assert.deepEqual((got[0] as { data: Uint8Array }).data, c2s, "the file has the original frame");
    const sent = parseVxlan(transport.sent[0]!.bytes)!.frame;
    assert.equal(sent[26], 100, "the tunnel has the mapped client address");
    const report = egress.report();
    assert.deepEqual(
      report.outputs.map((o) => o.kind),
      ["tunnel", "pcapng"],
      "a report per output",
    );
  });

  it("egress - abort removes the partial file", async () => {
    const path = join(dir, "aborted.pcap");
    const file = createCaptureFileOutput({ path, format: "pcap" });
    put(file, framesOf(flowContext())[0], T0);
    for (const c of file.flush()) await file.write(c);
    await file.abort();
    assert.ok(!existsSync(`${path}.partial`) && !existsSync(path), "nothing left");
  });

  it("egress - rotation by size: bounded files, UTC names and sequence, every packet once and in order", async () => {
    const out = join(dir, "by-size");
    const r = createRotatingFileOutput({ dir: out, format: "pcap", rotateBytes: 8192, prefix: "tap" });
    const flow = flowContext();
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 60; i++) {
      const [f] = framesOf(flow, new Uint8Array(400).fill(i));
      frames.push(f);
      put(r, f, T0 + BigInt(i) * 1_000_000n);
      if (i % 7 === 0) await pass(r);
    }
    for (const c of r.flush()) await r.write(c);
    await r.close();
    const names = readdirSync(out).sort();
    assert.ok(names.length >= 4, `${names.length} files`);
    names.forEach((n, i) => {
      assert.match(n, new RegExp(`^tap-\\d{8}T\\d{6}Z-${String(i + 1).padStart(6, "0")}\\.pcap$`), "name");
      assert.ok(statSync(join(out, n)).size <= 8192, `${n} within the size bound`);
      assert.equal(statSync(join(out, n)).mode & 0o777, 0o644, "no keys: 0644");
    });
    assert.equal(names[0], "tap-20251125T100000Z-000001.pcap", "first file named by its first packet");
    const all: Uint8Array[] = [];
    for (const n of names)
      for (const i of await items(join(out, n))) if (i.type === "packet") all.push(i.data);
    assert.deepEqual(all, frames, "every packet exactly once, in order");
    assert.equal(r.filesClosed, names.length, "counted");
  });

  it("egress - rotation by time: files end on the boundaries of packet time", async () => {
    const out = join(dir, "by-time");
    const r = createRotatingFileOutput({ dir: out, format: "pcapng", rotateNs: 1_000_000_000n });
    const [f] = framesOf(flowContext());
    // 10:00:00.2, 10:00:00.9, 10:00:01.0, 10:00:02.5, 10:00:02.7
    for (const ms of [200n, 900n, 1000n, 2500n, 2700n]) put(r, f, T0 + ms * 1_000_000n);
    for (const c of r.flush()) await r.write(c);
    await r.close();
    const names = readdirSync(out).sort();
    assert.deepEqual(
      names,
      [
        "cloudtap-20251125T100000Z-000001.pcapng",
        "cloudtap-20251125T100001Z-000002.pcapng",
        "cloudtap-20251125T100002Z-000003.pcapng",
      ],
      "one file per second of packet time",
    );
    const counts = await Promise.all(names.map(async (n) => (await items(join(out, n))).length));
    assert.deepEqual(counts, [2, 1, 2], "packets per file");
  });

  it("egress - rotating pcapng with keys: 0600, each file starts with the keys of flows still open", async () => {
    const out = join(dir, "keys");
    const r = createRotatingFileOutput({ dir: out, format: "pcapng", rotateBytes: 4096, embedKeys: true });
    const a = flowContext();
    const b = flowContext({ connId: "ff".repeat(16), client: { address: "10.1.2.4", port: 1 } });
    const sa = r.forFlow(a);
    const sb = r.forFlow(b);
    const [fa] = framesOf(a, new Uint8Array(300));
    const [fb] = framesOf(b, new Uint8Array(300));
    put(sa, fa, T0);
    r.embedKeys("CLIENT_RANDOM aa 01\n");
    put(sb, fb, T0 + 1n);
    r.embedKeys("CLIENT_RANDOM bb 02\n");
    for (let i = 0; i < 20; i++) put(sa, fa, T0 + 10n + BigInt(i));
    sb.end(); // b is done: its keys are not carried any further
    for (let i = 0; i < 20; i++) put(sa, fa, T0 + 100n + BigInt(i));
    for (const c of r.flush()) await r.write(c);
    await r.close();
    const names = readdirSync(out).sort();
    assert.ok(names.length >= 3, `${names.length} files`);
    for (const [i, n] of names.entries()) {
      assert.equal(statSync(join(out, n)).mode & 0o777, 0o600, `${n}: 0600`);
      const got = await items(join(out, n));
      const keys = got
        .filter((x) => x.type === "tls-key-log")
        .map((x) => (x as { text: string }).text)
        .join("");
      const firstPacket = got.findIndex((x) => x.type === "packet");
      assert.ok(keys.includes("aa 01"), `${n}: flow a's keys`);
      if (i > 0) {
        assert.equal(got[0]?.type, "tls-key-log", `${n}: the keys come before the packets`);
        assert.ok(firstPacket > 0, `${n}: has packets`);
      }
      if (i === names.length - 1)
        assert.ok(!keys.includes("bb 02"), `${n}: flow b ended, its keys stay behind`);
    }
  });

  it("egress - completed files are uploaded to a store", async () => {
    const out = join(dir, "upload");
    const store = openStore(join(dir, "bucket"));
    const r = createRotatingFileOutput({
      dir: out,
      format: "pcap",
      rotateBytes: 4096,
      upload: { store, prefix: "captures/", removeLocal: true },
    });
    const [f] = framesOf(flowContext(), new Uint8Array(500));
    for (let i = 0; i < 20; i++) put(r, f, T0 + BigInt(i));
    for (const c of r.flush()) await r.write(c);
    await r.close();
    const keys: string[] = [];
    for await (const o of store.list("captures/")) keys.push(o.key);
    assert.equal(keys.length, r.filesClosed, "every file uploaded");
    assert.equal(r.uploaded, keys.length, "counted");
    assert.deepEqual(readdirSync(out), [], "removed locally after upload");
    const first = await store.readBytes(keys[0]!);
    assert.equal(first.length, r.closedFiles[0]!.bytes, "the whole file");
  });

  it("egress - a cleartext pcap is 0600, and uploads with keys or decrypted content are 0600 in a directory store", async () => {
    const previous = process.umask(0o022);
    try {
      const [f] = framesOf(flowContext(), new Uint8Array(500));
      const plain = join(dir, "plain.pcap");
      const clear = join(dir, "cleartext.pcap");
      for (const [path, decryptedContent] of [
        [plain, false],
        [clear, true],
      ] as const) {
        const file = createCaptureFileOutput({ path, format: "pcap", decryptedContent });
        put(file, f, T0);
        await pass(file);
        await file.close();
      }
      assert.equal(statSync(plain).mode & 0o777, 0o644, "no keys, nothing decrypted: the umask rules");
      assert.equal(statSync(clear).mode & 0o777, 0o600, "decrypted content: owner-only whatever the format");

      const modes: Record<string, number> = {};
      for (const [name, options] of [
        ["keys", { format: "pcapng", embedKeys: true }],
        ["cleartext", { format: "pcap", decryptedContent: true }],
        ["public", { format: "pcap" }],
      ] as const) {
        const bucket = join(dir, `bucket-${name}`);
        const r = createRotatingFileOutput({
          dir: join(dir, `upload-${name}`),
          rotateBytes: 4096,
          ...options,
          upload: { store: openStore(bucket), prefix: "captures/" },
        });
        for (let i = 0; i < 12; i++) put(r, f, T0 + BigInt(i));
        if (name === "keys") r.embedKeys(`CLIENT_RANDOM ${"00".repeat(32)} ${"11".repeat(48)}\n`);
        await pass(r);
        await r.close();
        assert.ok(r.uploaded >= 2, `${name}: files uploaded`);
        for (const file of readdirSync(join(bucket, "captures"))) {
          const mode = statSync(join(bucket, "captures", file)).mode & 0o777;
          modes[name] = modes[name] === undefined || modes[name] === mode ? mode : -1;
        }
      }
      assert.deepEqual(modes, { keys: 0o600, cleartext: 0o600, public: 0o644 });
    } finally {
      process.umask(previous);
    }
  });
});
