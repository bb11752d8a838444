import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { StreamPacketsRequestSchema } from "@cloudtap/proto";
import { encodeBatchRequest } from "./mirror-stage.js";

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
