import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  type MirrorService,
  StreamPacketsRequestSchema,
  type StreamPacketsResponse,
  StreamPacketsResponseSchema,
} from "@cloudtap/proto";
import type { ServiceClient } from "@cloudtap/rpc";
import { encodeBatchRequest, grpcMirrorLink } from "./mirror-stage.js";

describe("mesh - mirror batch encoding", () => {
  it("encodeBatchRequest decodes to the request, copied or written in place into the frames' headroom", () => {
    const frames = new Uint8Array(300_000);
    for (let i = 0; i < frames.length; i++) frames[i] = (i * 31 + 5) & 0xff;
    const traces = [
      undefined,
      {},
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "ü=1,k=" },
      {
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate: "k=".padEnd(600, "v"),
      },
    ];
    for (const seq of [0n, 1n, 127n, 128n, 300n, 2n ** 35n, 2n ** 64n - 1n])
      for (const f of [frames, frames.subarray(7, 200), new Uint8Array(0)])
        for (const trace of traces)
          for (const headroom of [0, 512]) {
            // The frames at `headroom` in a buffer whose bytes before them are garbage the encoder may overwrite.
            const room = new Uint8Array(headroom + f.length).fill(0xee, 0, headroom);
            room.set(f, headroom);
            const framesIn = room.subarray(headroom);
            const got = encodeBatchRequest(seq, framesIn, trace, headroom);
            const what = `seq ${seq}, ${f.length} bytes, ${JSON.stringify(trace)?.slice(0, 80)}, headroom ${headroom}`;
            const header = got.length - f.length;
            const inPlace = headroom > 0 && f.length > 0 && header <= headroom;
            assert.equal(got.buffer === room.buffer, inPlace, `${what}: in place`);
            const back = fromBinary(
              StreamPacketsRequestSchema,
              new Uint8Array(got.buffer, got.byteOffset, got.length),
            );
            assert.equal(back.message.case, "batch");
            if (back.message.case !== "batch") continue;
            assert.equal(back.message.value.seq, seq, what);
            assert.ok(Buffer.from(back.message.value.frames).equals(Buffer.from(f)), what);
            assert.deepEqual({ ...back.message.value.traceContext }, { ...trace }, what);
            // The same message as protobuf-es encodes (its field order differs: compared decoded).
            const want = fromBinary(
              StreamPacketsRequestSchema,
              toBinary(
                StreamPacketsRequestSchema,
                create(StreamPacketsRequestSchema, {
                  message: { case: "batch", value: { seq, frames: f, traceContext: { ...trace } } },
                }),
              ),
            );
            assert.deepEqual(back, want, what);
          }
  });
});

describe("mesh - the mirror link's order", () => {
  it("a watermark declared while a batch waits for an in-flight slot goes out after that batch", async () => {
    // The transport stands in for gRPC (an in-process stream of the same messages, in order): what is under
    // test is the link's own queue, which decides the order the messages are written in.
    const seen: string[] = [];
    const responses: StreamPacketsResponse[] = [];
    let wake: (() => void) | undefined;
    const respond = (r: MessageInitShape<typeof StreamPacketsResponseSchema>) => {
      responses.push(create(StreamPacketsResponseSchema, r));
      wake?.();
    };
    let ended = false;
    const client = {
      streamPackets(requests: AsyncIterable<unknown>) {
        void (async () => {
          for await (const raw of requests) {
            const sym = Object.getOwnPropertySymbols(raw as object)[0];
            const m = sym
              ? fromBinary(StreamPacketsRequestSchema, (raw as Record<symbol, Uint8Array>)[sym]!).message
              : create(StreamPacketsRequestSchema, raw as MessageInitShape<typeof StreamPacketsRequestSchema>)
                  .message;
            if (m.case === "open") {
              seen.push("open");
              respond({ message: { case: "opened", value: { maxInFlight: 1 } } });
            } else if (m.case === "batch") seen.push(`batch ${m.value.seq}`);
            else if (m.case === "watermark") seen.push(`watermark ${m.value.watermarkNs} ${m.value.idle}`);
          }
          ended = true;
          wake?.();
        })();
        return (async function* () {
          for (;;) {
            const r = responses.shift();
            if (r) {
              yield r;
              continue;
            }
            if (ended) return;
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
        })();
      },
    } as unknown as ServiceClient<typeof MirrorService>;
    const link = grpcMirrorLink({ client, stitcherId: "s/0", mtu: 1500 });
    await link.open();
    const tick = () => new Promise((r) => setTimeout(r, 20));
    const first = link.send(1n, new Uint8Array([1]));
    const second = link.send(2n, new Uint8Array([2])); // waits: one in flight at most
    link.heartbeat?.(100n, false);
    link.heartbeat?.(90n, false); // never lowers what is declared
    await tick();
    assert.deepEqual(seen, ["open", "batch 1"], "the watermark waits behind batch 2");
    respond({ message: { case: "ack", value: { seq: 1n } } });
    await first;
    await tick();
    assert.deepEqual(seen, ["open", "batch 1", "batch 2", "watermark 100 false"]);
    respond({ message: { case: "ack", value: { seq: 2n } } });
    await second;
    link.heartbeat?.(200n, true); // nothing waits: at once
    await tick();
    assert.equal(seen.at(-1), "watermark 200 true");
    await link.close();
  });
});
