import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { KeyService, StatusService } from "@cloudtap/proto";
import * as grpc from "@grpc/grpc-js";
import { ErrorCategory, RpcError } from "./errors.js";
import { checkHealth, HealthStatus } from "./health.js";
import { ServiceIdentity } from "./identity.js";
import { caCertificatePath, createPki, privateKeyPath } from "./pki.js";
import { createRpcServer, type RpcServer, registerService } from "./server.js";
import { createClient } from "./service-adapter.js";
import { clientCredentials, peerIdentity, serverCredentials } from "./tls.js";

describe("rpc - mutual TLS", () => {
  let dir = "";
  let server: RpcServer;
  let address = "";
  const callers: (string | undefined)[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cloudtap-pki-"));
    await createPki(dir);
    server = await createRpcServer({
      address: "127.0.0.1:0",
      credentials: await serverCredentials(dir, ServiceIdentity.KeyBroker),
      services: [
        registerService(
          KeyService,
          {
            lookupKeys: (_request, context) => {
              callers.push(peerIdentity(context));
              return { entries: [] };
            },
            waitForKeys: () => ({}),
          },
          { allowedIdentities: [ServiceIdentity.Stitcher] },
        ),
        registerService(
          StatusService,
          { getStatus: () => ({ service: "key-broker", state: "serving" }) },
          { allowedIdentities: [ServiceIdentity.Stitcher, ServiceIdentity.Cli] },
        ),
      ],
    });
    address = `127.0.0.1:${server.port}`;
  });
  after(async () => {
    await server?.shutdown(500);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("rpc - pki: keys are mode 0600, certificates carry the identity as CN and SPIFFE URI", async () => {
    for (const id of [...Object.values(ServiceIdentity), "ca"]) {
      assert.equal((await stat(privateKeyPath(dir, id))).mode & 0o777, 0o600, id);
    }
    const { X509Certificate } = await import("node:crypto");
    const cert = new X509Certificate(await readFile(join(dir, "stitcher.crt")));
    assert.match(cert.subject, /CN=stitcher/);
    assert.match(cert.subjectAltName ?? "", /URI:spiffe:\/\/cloudtap\/stitcher/);
    assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
    assert.ok(cert.verify(new X509Certificate(await readFile(caCertificatePath(dir))).publicKey));
    const cli = new X509Certificate(await readFile(join(dir, "cloudtap-cli.crt")));
    assert.doesNotMatch(cli.subjectAltName ?? "", /DNS:/);
  });

  test("rpc - mTLS: the stitcher is served and its identity is seen by the handler", async () => {
    const client = createClient(KeyService, address, {
      credentials: await clientCredentials(dir, ServiceIdentity.Stitcher),
    });
    try {
      const response = await client.lookupKeys({ clientRandoms: [new Uint8Array(32)] });
      assert.deepEqual(response.entries, []);
      assert.deepEqual(callers, [ServiceIdentity.Stitcher]);
    } finally {
      client.close();
    }
  });

  test("rpc - mTLS: another identity gets PERMISSION_DENIED, per service", async () => {
    const credentials = await clientCredentials(dir, ServiceIdentity.Fetcher);
    const client = createClient(KeyService, address, { credentials });
    const cli = createClient(StatusService, address, {
      credentials: await clientCredentials(dir, ServiceIdentity.Cli),
    });
    const cliKeys = createClient(KeyService, address, {
      credentials: await clientCredentials(dir, ServiceIdentity.Cli),
    });
    try {
      await assert.rejects(client.lookupKeys({}), (err) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.code, grpc.status.PERMISSION_DENIED);
        assert.equal(err.category, ErrorCategory.PermissionDenied);
        return true;
      });
      assert.equal((await cli.getStatus({})).state, "serving");
      await assert.rejects(
        cliKeys.lookupKeys({}),
        (err) => err instanceof RpcError && err.code === grpc.status.PERMISSION_DENIED,
      );
      // Health is open to every holder of a mesh certificate.
      assert.equal(await checkHealth(address, credentials), HealthStatus.Serving);
    } finally {
      client.close();
      cli.close();
      cliKeys.close();
    }
  });

  test("rpc - mTLS: a client without a certificate cannot connect", async () => {
    const client = createClient(KeyService, address, {
      credentials: grpc.credentials.createSsl(await readFile(caCertificatePath(dir))),
      defaultTimeoutMs: 3000,
    });
    try {
      await assert.rejects(client.lookupKeys({}), (err) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.code, grpc.status.UNAVAILABLE);
        return true;
      });
    } finally {
      client.close();
    }
  });

  test("rpc - mTLS: a plaintext client cannot connect", async () => {
    const client = createClient(KeyService, address, {
      credentials: grpc.credentials.createInsecure(),
      defaultTimeoutMs: 3000,
    });
    try {
      await assert.rejects(
        client.lookupKeys({}),
        (err) => err instanceof RpcError && err.code !== grpc.status.OK,
      );
    } finally {
      client.close();
    }
  });
});
