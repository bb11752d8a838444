/**
 * cloud stores - Azure Blob, against azurite (the real emulator, its own process on 127.0.0.1), driven by
 * `@azure/storage-blob` inside cloudtap. Data and keys live in two storage accounts, each with its own
 * account key. Azurite checks shared-key signatures and a SAS's permissions, so bad credentials are a wrong
 * account key and a denied permission is a SAS that lacks it (`r` only: no listing; `l` only: no reads).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  type Azurite,
  azuriteContainerSas,
  createAzuriteContainer,
  type FaultProxy,
  startAzurite,
  startFaultProxy,
} from "@cloudtap/test-harness";
import {
  type CloudStores,
  checkResumedReads,
  credentialArgs,
  inventory,
  simulateInto,
  stitchDigest,
} from "./cloud-run.js";

describe("cloud stores - azure (azurite)", { timeout: 900_000 }, () => {
  let azurite: Azurite;
  let proxy: FaultProxy;
  let work: string;
  let stores: CloudStores;
  let dir: string;
  const dataAccount = {
    name: "tapdata",
    key: Buffer.from("tapdata-account-key-0001-0123456789").toString("base64"),
  };
  const keysAccount = {
    name: "tapkeys",
    key: Buffer.from("tapkeys-account-key-0001-0123456789").toString("base64"),
  };
  const file = (name: string, value: unknown) => {
    const p = join(work, name);
    writeFileSync(p, typeof value === "string" ? value : JSON.stringify(value));
    return p;
  };
  const url = (account: string, container: string, endpoint: string) =>
    `azblob://${account}/${container}/t1?endpoint=${endpoint}`;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "cloudtap-azure-"));
    azurite = await startAzurite({ accounts: [dataAccount, keysAccount] });
    proxy = await startFaultProxy({ host: "127.0.0.1", port: azurite.port });
    await createAzuriteContainer(azurite, dataAccount, "tap-data");
    await createAzuriteContainer(azurite, keysAccount, "tap-keys");
    stores = {
      dataUrl: url("tapdata", "tap-data", azurite.endpoint("tapdata")),
      dataCredentials: file("data.json", { access_key: dataAccount.key }),
      keysUrl: url("tapkeys", "tap-keys", azurite.endpoint("tapkeys")),
      keysCredentials: file("keys.json", { access_key: keysAccount.key }),
    };
    dir = await simulateInto(stores, work);
  });
  after(async () => {
    await proxy?.close();
    await azurite?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  const viaProxy = (u: string) => u.replace(`127.0.0.1:${azurite.port}`, `127.0.0.1:${proxy.port}`);
  /** A read of one data blob (not a listing, not a container call). */
  const dataBlobGet = (req: { method?: string | undefined; url?: string | undefined }) =>
    req.method === "GET" && /^\/tapdata\/tap-data\/t1\//.test(req.url ?? "");

  test("cloud stores - azure: stitch equals the directory run packet for packet; inspect the same inventory", async () => {
    const cloud = await stitchDigest(join(work, "cloud.pcapng"), [
      "--source",
      stores.dataUrl,
      "--keys",
      stores.keysUrl,
      ...credentialArgs(stores),
    ]);
    assert.equal(cloud.run.status, 0, cloud.run.stderr);
    const local = await stitchDigest(join(work, "dir.pcapng"), ["--source", dir]);
    assert.equal(local.run.status, 0, local.run.stderr);
    assert.ok(local.digest!.packets > 100, `packets: ${local.digest!.packets}`);
    assert.ok(local.digest!.keyLogLines.length > 0, "keys were read and embedded");
    assert.deepEqual(cloud.digest, local.digest);
    const a = await inventory([stores.dataUrl, "--keys", stores.keysUrl, ...credentialArgs(stores)]);
    const b = await inventory([dir]);
    assert.equal(a.run.status, b.run.status, a.run.stderr);
    assert.deepEqual(a.report, b.report);
  });

  test("cloud stores - azure: a 503 burst and a connection reset mid-object are retried; the output is complete", async () => {
    proxy.fail503(
      3,
      '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>The server is busy.</Message></Error>',
    );
    // Data blobs (about 48 KiB each) are cut after 4000 bytes; key logs are smaller.
    proxy.resetMidBody(2, 4000, dataBlobGet);
    const cloud = await stitchDigest(join(work, "faults.pcapng"), [
      "--source",
      viaProxy(stores.dataUrl),
      "--keys",
      viaProxy(stores.keysUrl),
      ...credentialArgs(stores),
    ]);
    assert.equal(cloud.run.status, 0, cloud.run.stderr);
    assert.equal(proxy.injected["503"], 3);
    assert.ok(proxy.injected.reset >= 1, `resets: ${proxy.injected.reset}`);
    const local = await stitchDigest(join(work, "dir2.pcapng"), ["--source", dir]);
    assert.deepEqual(cloud.digest, local.digest);
  });

  test("cloud stores - azure: bad credentials, a missing container, a denied permission: clear errors at start and per blob", async () => {
    const wrongKey = Buffer.from("not-the-account-key-of-tapdata-000").toString("base64");
    const bad = await stitchDigest(join(work, "bad.pcapng"), [
      "--source",
      stores.dataUrl,
      "--credentials",
      file("wrong.json", { access_key: wrongKey }),
    ]);
    assert.equal(bad.run.status, 1);
    assert.match(bad.run.stderr, /BadCredentialsError: credentials refused/);
    assert.match(bad.run.stderr, /credentials file .*wrong\.json/);
    assert.doesNotMatch(bad.run.stderr, new RegExp(wrongKey.slice(0, 20)));

    const missing = await stitchDigest(join(work, "bad2.pcapng"), [
      "--source",
      url("tapdata", "no-such-container", azurite.endpoint("tapdata")),
      "--credentials",
      stores.dataCredentials,
    ]);
    assert.equal(missing.run.status, 1);
    assert.match(missing.run.stderr, /MissingContainerError: no such container "no-such-container"/);

    // A SAS that may read but not list: the run cannot start.
    const readOnlySas = await azuriteContainerSas(dataAccount, "tap-data", "r");
    const noList = await stitchDigest(join(work, "bad3.pcapng"), [
      "--source",
      stores.dataUrl,
      "--credentials",
      file("read-sas.json", { sas_token: readOnlySas }),
    ]);
    assert.equal(noList.run.status, 1);
    assert.match(noList.run.stderr, /PermissionDeniedError: permission denied: list \(blob list \(SAS l\)\)/);
    assert.doesNotMatch(noList.run.stderr, /sig=/);

    // A SAS that may list but not read: the run starts, and every blob is a named problem.
    const listSas = await azuriteContainerSas(dataAccount, "tap-data", "l");
    const perBlob = await stitchDigest(join(work, "perblob.pcapng"), [
      "--source",
      stores.dataUrl,
      "--keys",
      stores.keysUrl,
      "--credentials",
      file("list-sas.txt", listSas),
      "--keys-credentials",
      stores.keysCredentials,
    ]);
    assert.equal(perBlob.run.status, 0, perBlob.run.stderr);
    const text = perBlob.run.stdout;
    assert.match(text, /permission denied: get \(blob read \(SAS r\)\)/);
    const denied = (text.match(/permission denied: get/g) ?? []).length;
    assert.ok(denied >= 2, `per-blob problems: ${denied}`);
    assert.doesNotMatch(text, /sig=/);
  });

  test("cloud stores - azure: a large blob cut mid-body resumes from the last byte; replaced meanwhile, an error (If-Match)", async () => {
    await checkResumedReads({
      url: stores.dataUrl,
      viaProxy: viaProxy(stores.dataUrl),
      credentialsFile: stores.dataCredentials,
      proxy,
    });
  });
});
