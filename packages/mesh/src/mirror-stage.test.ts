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
  it("encodeBatchRequest gives protobuf-es's bytes for the same request, and decodes to it", () => {
    const frames = new Uint8Array(300_000);
    for (let i = 0; i < frames.length; i++) frames[i] = (i * 31 + 5) & 0xff;
    const traces = [
      undefined,
      {},
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" },
      { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate: "ü=1,k=" },
    ];
    for (const seq of [0n, 1n, 127n, 128n, 300n, 2n ** 35n, 2n ** 64n - 1n])
      for (const f of [frames, frames.subarray(7, 200), new Uint8Array(0)])
        for (const trace of traces) {
          const value = { seq, frames: f, traceContext: { ...trace } };
          const want = toBinary(
            StreamPacketsRequestSchema,
            create(StreamPacketsRequestSchema, {
              message: { case: "batch", value },
            }),
          );
          const got = encodeBatchRequest(seq, f, trace);
          assert.ok(
            Buffer.from(got).equals(Buffer.from(want)),
            `seq ${seq}, ${f.length} bytes, ${JSON.stringify(trace)}`,
          );
          const back = fromBinary(StreamPacketsRequestSchema, got);
          assert.equal(back.message.case, "batch");
          if (back.message.case !== "batch") continue;
          assert.equal(back.message.value.seq, seq);
          assert.ok(Buffer.from(back.message.value.frames).equals(Buffer.from(f)));
          assert.deepEqual({ ...back.message.value.traceContext }, { ...trace });
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
