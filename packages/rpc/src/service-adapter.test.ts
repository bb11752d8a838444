import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { create, createFileRegistry, type DescService, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import {
  file_cloudtap_keys_v1_keys,
  KeyService,
  MirrorService,
  type StreamPacketsRequestSchema,
  type StreamPacketsResponse,
} from "@cloudtap/proto";
import * as grpc from "@grpc/grpc-js";
import { ErrorCategory, INTERNAL_ERROR_MESSAGE, RpcError } from "./errors.js";
import { createRpcServer, type RpcServer, registerService } from "./server.js";
import { createClient, type HandlerContext, type ServiceHandlers } from "./service-adapter.js";

// A client-streaming method exists in no cloudtap proto, so the test builds a service descriptor at run time.
const sumFile = create(FileDescriptorProtoSchema, {
  name: "cloudtap/testing/v1/sum.proto",
  package: "cloudtap.testing.v1",
  syntax: "proto3",
  dependency: ["cloudtap/keys/v1/keys.proto"],
  service: [
    {
      name: "SumService",
      method: [
        {
          name: "CountRandoms",
          inputType: ".cloudtap.keys.v1.LookupKeysRequest",
          outputType: ".cloudtap.keys.v1.WaitForKeysResponse",
          clientStreaming: true,
        },
      ],
    },
  ],
});
const SumService: DescService = createFileRegistry(sumFile, (name) =>
  name === "cloudtap/keys/v1/keys.proto" ? file_cloudtap_keys_v1_keys : undefined,
).getService("cloudtap.testing.v1.SumService")!;

const random = (n: number) => new Uint8Array(32).fill(n);
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });

class NotFoundThing extends Error {
  override readonly name = "NotFoundThing";
  readonly category = "not-found";
}

const errors: unknown[] = [];
let lastSignal: AbortSignal | undefined;

const keyHandlers: ServiceHandlers<typeof KeyService> = {
  async lookupKeys(request) {
    if (request.clientRandoms.length === 0) {
      throw new NotFoundThing("nothing asked for", { cause: new Error("secret-cause-text") });
    }
    if (request.clientRandoms[0]?.[0] === 0xee) throw new Error("a bug with secret-detail");
    return { entries: request.clientRandoms.map((r) => ({ clientRandom: r, keyLogLines: `n=${r[0]}\n` })) };
  },
  async waitForKeys(request, context: HandlerContext) {
    lastSignal = context.signal;
    await sleep(request.timeoutMs, context.signal);
    return { missing: request.clientRandoms };
  },
};

/** The egress side of the mirror protocol in miniature: opened first, then one ack per batch. */
const mirrorHandlers: ServiceHandlers<typeof MirrorService> = {
  async *streamPackets(requests) {
    for await (const request of requests) {
      if (request.message.case === "open") {
        yield { message: { case: "opened", value: { maxInFlight: 4, encapsulationBytes: 50 } } };
      } else if (request.message.case === "batch") {
        yield { message: { case: "ack", value: { seq: request.message.value.seq } } };
      }
    }
  },
};

// A handler object missing a method does not compile.
// @ts-expect-error waitForKeys is missing
const _incomplete: ServiceHandlers<typeof KeyService> = { lookupKeys: async () => ({}) };
void _incomplete;

describe("rpc - service adapter", () => {
  let server: RpcServer;
  let address: string;
  before(async () => {
    server = await createRpcServer({
      address: "127.0.0.1:0",
      credentials: grpc.ServerCredentials.createInsecure(),
      services: [
        registerService(KeyService, keyHandlers),
        registerService(MirrorService, mirrorHandlers),
        registerService(SumService, {
          async countRandoms(requests: AsyncIterable<{ clientRandoms: Uint8Array[] }>) {
            const all: Uint8Array[] = [];
            for await (const r of requests) all.push(...r.clientRandoms);
            return { missing: all };
          },
        } as never),
      ],
      onError: (err) => errors.push(err),
    });
    address = `127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server.shutdown(1000);
  });
  const credentials = grpc.credentials.createInsecure();

  test("rpc - unary call through the typed client", async () => {
    const client = createClient(KeyService, address, { credentials });
    try {
      const response = await client.lookupKeys({ clientRandoms: [random(1), random(2)] });
      assert.deepEqual(
        response.entries.map((e) => e.keyLogLines),
        ["n=1\n", "n=2\n"],
      );
      assert.deepEqual(response.entries[1]?.clientRandom, random(2));
    } finally {
      client.close();
    }
  });

  test("rpc - bidi stream: opened, then one ack per batch in order", async () => {
    const client = createClient(MirrorService, address, { credentials });
    async function* requests(): AsyncGenerator<MessageInitShape<typeof StreamPacketsRequestSchema>> {
      yield { message: { case: "open", value: { stitcherId: "s1", mtu: 1500 } } };
      for (let seq = 1n; seq <= 50n; seq++) {
        yield { message: { case: "batch", value: { seq, frames: new Uint8Array(1024) } } };
      }
    }
    const got: StreamPacketsResponse[] = [];
    try {
      for await (const response of client.streamPackets(requests())) got.push(response);
    } finally {
      client.close();
    }
    assert.equal(got.length, 51);
    assert.equal(got[0]?.message.case, "opened");
    const acks = got.slice(1).map((r) => (r.message.case === "ack" ? r.message.value.seq : -1n));
    assert.deepEqual(
      acks,
      Array.from({ length: 50 }, (_, i) => BigInt(i + 1)),
    );
  });

  test("rpc - bidi stream: a client that stops reading cancels the call and stops pulling its requests", async () => {
    const client = createClient(MirrorService, address, { credentials });
    let sourceClosed = false;
    async function* endless(): AsyncGenerator<MessageInitShape<typeof StreamPacketsRequestSchema>> {
      try {
        yield { message: { case: "open", value: { stitcherId: "s2", mtu: 1500 } } };
        for (let seq = 1n; ; seq++)
          yield { message: { case: "batch", value: { seq, frames: new Uint8Array(64 * 1024) } } };
      } finally {
        sourceClosed = true;
      }
    }
    try {
      let n = 0;
      for await (const _ of client.streamPackets(endless())) if (++n === 3) break;
      for (let i = 0; i < 100 && !sourceClosed; i++) await sleep(20);
      assert.ok(sourceClosed, "the request source was closed");
    } finally {
      client.close();
    }
  });

  test("rpc - client stream", async () => {
    const client = createClient(SumService, address, { credentials });
    async function* requests() {
      for (let i = 0; i < 5; i++) yield { clientRandoms: [random(i)] };
    }
    try {
      const response = (await (client["countRandoms"] as (r: unknown) => Promise<unknown>)(requests())) as {
        missing: Uint8Array[];
      };
      assert.equal(response.missing.length, 5);
      assert.deepEqual(response.missing[4], random(4));
    } finally {
      client.close();
    }
  });

  test("rpc - a per-call deadline fails the call with DEADLINE_EXCEEDED and aborts the handler", async () => {
    const client = createClient(KeyService, address, { credentials });
    try {
      const started = Date.now();
      await assert.rejects(
        client.waitForKeys({ clientRandoms: [random(1)], timeoutMs: 5000 }, { timeoutMs: 150 }),
        (err) => {
          assert.ok(err instanceof RpcError);
          assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
          assert.equal(err.category, ErrorCategory.Deadline);
          return true;
        },
      );
      assert.ok(Date.now() - started < 2000);
      await sleep(50);
      assert.equal(lastSignal?.aborted, true);
    } finally {
      client.close();
    }
  });

  test("rpc - a cancelled signal cancels the call", async () => {
    const client = createClient(KeyService, address, { credentials });
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      await assert.rejects(
        client.waitForKeys({ timeoutMs: 5000 }, { signal: controller.signal }),
        (err) => err instanceof RpcError && err.category === ErrorCategory.Cancelled,
      );
    } finally {
      client.close();
    }
  });

  test("rpc - errors: category mapped to the status, no cause on the wire, uncategorized is INTERNAL", async () => {
    const client = createClient(KeyService, address, { credentials });
    errors.length = 0;
    try {
      await assert.rejects(client.lookupKeys({}), (err) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.code, grpc.status.NOT_FOUND);
        assert.equal(err.category, ErrorCategory.NotFound);
        assert.equal(err.message, "nothing asked for");
        return true;
      });
      await assert.rejects(client.lookupKeys({ clientRandoms: [random(0xee)] }), (err) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.code, grpc.status.INTERNAL);
        assert.equal(err.message, INTERNAL_ERROR_MESSAGE);
        assert.ok(!JSON.stringify(err.metadata.getMap()).includes("secret"));
        return true;
      });
      // The causes reach the server's error hook (for the logs).
      assert.equal(errors.length, 2);
      assert.match(String((errors[0] as Error).cause), /secret-cause-text/);
    } finally {
      client.close();
    }
  });
});

describe("rpc - server shutdown", () => {
  test("rpc - shutdown waits for a call in flight, then forces a hung one at the deadline", async () => {
    const server = await createRpcServer({
      address: "127.0.0.1:0",
      credentials: grpc.ServerCredentials.createInsecure(),
      services: [registerService(KeyService, keyHandlers)],
    });
    const client = createClient(KeyService, `127.0.0.1:${server.port}`, {
      credentials: grpc.credentials.createInsecure(),
    });
    try {
      const short = client.waitForKeys({ clientRandoms: [random(1)], timeoutMs: 200 });
      const hung = client
        .waitForKeys({ clientRandoms: [random(2)], timeoutMs: 60_000 })
        .catch((e: unknown) => e);
      await sleep(50);
      const down = server.shutdown(800);
      assert.equal((await short).missing.length, 1);
      assert.deepEqual(await down, { forced: true });
      const err = await hung;
      assert.ok(err instanceof RpcError);
    } finally {
      client.close();
    }
  });
});
