import assert from "node:assert/strict";
import { test } from "node:test";
import { MirrorService, type StreamPacketsResponse } from "@cloudtap/proto";
import { createClient, createRpcServer, GRPC_FRAME_HEADER_BYTES, registerService } from "@cloudtap/rpc";
import * as grpc from "@grpc/grpc-js";
import { encodeBatchRequest, grpcMirrorLink } from "./mirror-stage.js";

test("mesh - the mirror link over real gRPC: batches framed in their headroom when it has room, copied when not", async () => {
  const received: Uint8Array[] = [];
  const server = await createRpcServer({
    address: "127.0.0.1:0",
    credentials: grpc.ServerCredentials.createInsecure(),
    services: [
      registerService(MirrorService, {
        async *streamPackets(requests) {
          for await (const r of requests) {
            const m = r.message;
            if (m.case === "open") {
              yield {
                message: {
                  case: "opened",
                  value: { encapsulationBytes: 0, embedsKeys: false, maxInFlight: 4 },
                },
              } as StreamPacketsResponse;
            } else if (m.case === "batch") {
              received.push(new Uint8Array(m.value.frames));
              yield { message: { case: "ack", value: { seq: m.value.seq } } } as StreamPacketsResponse;
            }
          }
        },
      }),
    ],
  });
  const client = createClient(MirrorService, `127.0.0.1:${server.port}`, {
    credentials: grpc.credentials.createInsecure(),
  });
  try {
    const link = grpcMirrorLink({ client, stitcherId: "test/0", mtu: 1500 });
    await link.open();
    // The request's own header before 300,000 frame bytes is 10 bytes (tags, lengths, seq): with 15 or more
    // bytes of headroom, gRPC's 5-byte frame header fits before it as well.
    const sent: Uint8Array[] = [];
    let seq = 0n;
    for (const headroom of [0, 3, 10, 14, 15, 64, 512]) {
      const frames = new Uint8Array(300_000);
      for (let i = 0; i < frames.length; i++) frames[i] = (i * 7 + headroom) & 0xff;
      const room = new Uint8Array(headroom + frames.length).fill(0xee, 0, headroom);
      room.set(frames, headroom);
      seq++;
      const header = encodeBatchRequest(seq, frames, undefined, 0).length - frames.length;
      await link.send(seq, room.subarray(headroom), undefined, headroom);
      sent.push(frames);
      assert.equal(header, 10);
      const inPlace = headroom >= header + GRPC_FRAME_HEADER_BYTES;
      // Framed in place: gRPC's header (uncompressed, u32 length of the request) sits right before the request.
      const at = headroom - header - GRPC_FRAME_HEADER_BYTES;
      const length = header + frames.length;
      const framed =
        at >= 0 &&
        room[at] === 0 &&
        new DataView(room.buffer, room.byteOffset + at + 1, 4).getUint32(0) === length;
      assert.equal(framed, inPlace, `headroom ${headroom}: framed in place`);
      // The frames themselves are never written to.
      assert.ok(
        Buffer.from(room.subarray(headroom)).equals(Buffer.from(frames)),
        `headroom ${headroom}: frames`,
      );
    }
    assert.equal(received.length, sent.length);
    for (let i = 0; i < sent.length; i++)
      assert.ok(Buffer.from(received[i]!).equals(Buffer.from(sent[i]!)), `batch ${i} arrived whole`);
    await link.close();
  } finally {
    client.close();
    await server.shutdown(1000);
  }
});
