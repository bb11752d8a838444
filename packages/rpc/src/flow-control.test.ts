import assert from "node:assert/strict";
import { once } from "node:events";
import { connect } from "node:http2";
import { test } from "node:test";
import { KeyService } from "@cloudtap/proto";
import * as grpc from "@grpc/grpc-js";
import { createRpcServer, registerService, SERVER_FLOW_CONTROL_WINDOW } from "./server.js";

test("rpc - a server offers its flow-control window to clients, per stream and for the connection", async () => {
  // Read from the wire by a plain HTTP/2 client: the server's SETTINGS (each stream's window) and its first
  // WINDOW_UPDATE on the connection. Without the grpc-js patch both stay at HTTP/2's 65,535 bytes.
  const server = await createRpcServer({
    address: "127.0.0.1:0",
    credentials: grpc.ServerCredentials.createInsecure(),
    services: [registerService(KeyService, { lookupKeys: () => ({}), waitForKeys: () => ({}) })],
  });
  const session = connect(`http://127.0.0.1:${server.port}`);
  try {
    await once(session, "remoteSettings");
    assert.equal(session.remoteSettings.initialWindowSize, SERVER_FLOW_CONTROL_WINDOW);
    const deadline = Date.now() + 5000;
    while (session.state.remoteWindowSize !== SERVER_FLOW_CONTROL_WINDOW && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(session.state.remoteWindowSize, SERVER_FLOW_CONTROL_WINDOW);
  } finally {
    session.destroy();
    await server.shutdown(1000);
  }
});
