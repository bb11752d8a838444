import assert from "node:assert/strict";
import { test } from "node:test";
import { Health, HealthCheckResponse_ServingStatus, KeyService } from "@cloudtap/proto";
import * as grpc from "@grpc/grpc-js";
import { ErrorCategory, RpcError } from "./errors.js";
import { checkHealth, HealthStatus } from "./health.js";
import { createRpcServer, registerService } from "./server.js";
import { createClient } from "./service-adapter.js";

test("rpc - health: every registered service and the server are SERVING; Watch follows changes", async () => {
  const server = await createRpcServer({
    address: "127.0.0.1:0",
    credentials: grpc.ServerCredentials.createInsecure(),
    services: [
      registerService(KeyService, {
        lookupKeys: () => ({}),
        waitForKeys: () => ({}),
      }),
    ],
  });
  const address = `127.0.0.1:${server.port}`;
  const credentials = grpc.credentials.createInsecure();
  const client = createClient(Health, address, { credentials });
  try {
    assert.equal(await checkHealth(address, credentials), HealthStatus.Serving);
    assert.equal(
      await checkHealth(address, credentials, { service: "cloudtap.keys.v1.KeyService" }),
      "serving",
    );
    await assert.rejects(
      checkHealth(address, credentials, { service: "no.such.Service" }),
      (err) => err instanceof RpcError && err.category === ErrorCategory.NotFound,
    );

    const controller = new AbortController();
    const seen: HealthCheckResponse_ServingStatus[] = [];
    const watching = (async () => {
      for await (const r of client.watch(
        { service: "cloudtap.keys.v1.KeyService" },
        { signal: controller.signal },
      )) {
        seen.push(r.status);
        if (seen.length === 1) server.health.set("cloudtap.keys.v1.KeyService", HealthStatus.NotServing);
        if (seen.length === 2) server.health.set("cloudtap.keys.v1.KeyService", HealthStatus.Serving);
        if (seen.length === 3) break;
      }
    })();
    await watching;
    assert.deepEqual(seen, [
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
      HealthCheckResponse_ServingStatus.SERVING,
    ]);

    const unknown = client.watch({ service: "not.yet.Registered" })[Symbol.asyncIterator]();
    assert.equal((await unknown.next()).value?.status, HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN);
    await unknown.return?.();
  } finally {
    client.close();
    await server.shutdown(500);
  }
});

test("rpc - health: shutdown sends NOT_SERVING to watchers and ends their streams, so it is not forced", async () => {
  const server = await createRpcServer({
    address: "127.0.0.1:0",
    credentials: grpc.ServerCredentials.createInsecure(),
    services: [],
  });
  const client = createClient(Health, `127.0.0.1:${server.port}`, {
    credentials: grpc.credentials.createInsecure(),
  });
  try {
    const seen: HealthCheckResponse_ServingStatus[] = [];
    let down: Promise<{ forced: boolean }> | undefined;
    for await (const r of client.watch({ service: "" })) {
      seen.push(r.status);
      if (seen.length === 1) down = server.shutdown(3000);
    }
    assert.deepEqual(await down, { forced: false });
    assert.deepEqual(seen, [
      HealthCheckResponse_ServingStatus.SERVING,
      HealthCheckResponse_ServingStatus.NOT_SERVING,
    ]);
  } finally {
    client.close();
  }
});
