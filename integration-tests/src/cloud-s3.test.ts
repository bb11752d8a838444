/**
 * cloud stores - S3, against s3rver (a real S3-compatible server, its own process on 127.0.0.1), driven by
 * `@aws-sdk/client-s3` inside cloudtap. s3rver checks the access key id but not the V4 signature, so bad
 * credentials here are an unknown key id; it has no permissions at all, so a denied permission is a 403
 * from the test harness's fault proxy in front of it (the answer S3 gives when a policy withholds it).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { openStore } from "@cloudtap/object-store";
import { type FaultProxy, type S3rver, startFaultProxy, startS3rver } from "@cloudtap/test-harness";
import {
  type CloudStores,
  checkResumedReads,
  cloudtapAsync,
  credentialArgs,
  inventory,
  simulateInto,
  stitchDigest,
} from "./cloud-run.js";

describe("cloud stores - s3 (s3rver)", { timeout: 900_000 }, () => {
  let s3: S3rver;
  let proxy: FaultProxy;
  let work: string;
  let stores: CloudStores;
  let dir: string;
  const file = (name: string, value: unknown) => {
    const p = join(work, name);
    writeFileSync(p, JSON.stringify(value));
    return p;
  };
  const url = (bucket: string, endpoint: string) =>
    `s3://${bucket}/t1?endpoint=${endpoint}&path_style=true&region=us-east-1`;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "cloudtap-s3-"));
    const data = { accessKeyId: "DATAWRITER0000000001", secretAccessKey: "data-secret-0001" };
    const keys = { accessKeyId: "KEYSWRITER0000000001", secretAccessKey: "keys-secret-0001" };
    s3 = await startS3rver({ buckets: ["tap-data", "tap-keys", "tap-out"], keyPairs: [data, keys] });
    proxy = await startFaultProxy({ host: "127.0.0.1", port: s3.port });
    stores = {
      dataUrl: url("tap-data", s3.endpoint),
      dataCredentials: file("data.json", {
        access_key_id: data.accessKeyId,
        secret_access_key: data.secretAccessKey,
      }),
      keysUrl: url("tap-keys", s3.endpoint),
      keysCredentials: file("keys.json", {
        access_key_id: keys.accessKeyId,
        secret_access_key: keys.secretAccessKey,
      }),
    };
    dir = await simulateInto(stores, work);
  });
  after(async () => {
    await proxy?.close();
    await s3?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  test("cloud stores - s3: stitch equals the directory run packet for packet; inspect the same inventory", async () => {
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

  test("cloud stores - s3: a 503 burst and a connection reset mid-object are retried; the output is complete", async () => {
    proxy.fail503(3);
    // Data blobs (about 48 KiB each) are cut after 4000 bytes; key logs are smaller.
    proxy.resetMidBody(2, 4000, (req) => req.method === "GET" && /^\/tap-data\/t1\//.test(req.url ?? ""));
    const viaProxy = (u: string) => u.replace(s3.endpoint, proxy.endpoint);
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

  test("cloud stores - s3: bad credentials, a missing bucket, a denied permission: clear errors at start and per blob", async () => {
    const unknown = file("unknown.json", {
      access_key_id: "NOSUCHKEY00000000001",
      secret_access_key: "not-a-secret-that-works",
    });
    const bad = await stitchDigest(join(work, "bad.pcapng"), [
      "--source",
      stores.dataUrl,
      "--credentials",
      unknown,
    ]);
    assert.equal(bad.run.status, 1);
    assert.match(bad.run.stderr, /BadCredentialsError: credentials refused/);
    assert.match(bad.run.stderr, /credentials file .*unknown\.json/);
    assert.doesNotMatch(bad.run.stderr, /not-a-secret-that-works/);

    const missing = await stitchDigest(join(work, "bad2.pcapng"), [
      "--source",
      url("no-such-bucket", s3.endpoint),
      "--credentials",
      stores.dataCredentials,
    ]);
    assert.equal(missing.run.status, 1);
    assert.match(missing.run.stderr, /MissingContainerError: no such bucket "no-such-bucket"/);

    // A listing denied (the run cannot start) ...
    const viaProxy = (u: string) => u.replace(s3.endpoint, proxy.endpoint);
    proxy.deny((req) => req.method === "GET" && /^\/tap-data\/?\?/.test(req.url ?? ""));
    const noList = await stitchDigest(join(work, "bad3.pcapng"), [
      "--source",
      viaProxy(stores.dataUrl),
      "--credentials",
      stores.dataCredentials,
    ]);
    assert.equal(noList.run.status, 1);
    assert.match(noList.run.stderr, /PermissionDeniedError: permission denied: list \(s3:ListBucket\)/);

    // ... and list but not get: the run starts, and every blob is a named problem saying which permission.
    proxy.deny((req) => req.method === "GET" && /^\/tap-data\/t1\//.test(req.url ?? ""));
    const perBlob = await stitchDigest(join(work, "perblob.pcapng"), [
      "--source",
      viaProxy(stores.dataUrl),
      "--keys",
      stores.keysUrl,
      ...credentialArgs(stores),
    ]);
    proxy.deny(undefined);
    assert.equal(perBlob.run.status, 0, perBlob.run.stderr);
    const text = perBlob.run.stdout;
    assert.match(text, /permission denied: get \(s3:GetObject\)/);
    const denied = (text.match(/permission denied: get/g) ?? []).length;
    assert.ok(denied >= 2, `per-blob problems: ${denied}`);
  });

  test("cloud stores - s3: a large object cut mid-body resumes from the last byte, asking for the first ETag (If-Match)", async () => {
    const viaProxy = (u: string) => u.replace(s3.endpoint, proxy.endpoint);
    await checkResumedReads({
      url: stores.dataUrl,
      viaProxy: viaProxy(stores.dataUrl),
      credentialsFile: stores.dataCredentials,
      proxy,
      // s3rver ignores If-Match on a GET: the check is that the resumed GET carries the first ETag.
      serverChecksVersion: false,
    });
  });

  test("cloud stores - s3: rotating files are uploaded with --upload-credentials, equal to the local files", async () => {
    const outDir = join(work, "rotated");
    const outUrl = url("tap-out", s3.endpoint).replace("/t1?", "/caps/?");
    const run = await cloudtapAsync([
      "stitch",
      "--source",
      stores.dataUrl,
      "--keys",
      stores.keysUrl,
      ...credentialArgs(stores),
      "--out-dir",
      outDir,
      "--rotate-size",
      "64KiB",
      "--upload",
      outUrl,
      "--upload-credentials",
      stores.keysCredentials,
      "--json",
    ]);
    assert.equal(run.status, 0, run.stderr);
    const local = readdirSync(outDir)
      .filter((f) => f.endsWith(".pcapng"))
      .sort();
    assert.ok(local.length >= 2, `rotated files: ${local.length}`);
    registerCloudStores();
    const out = openStore(outUrl, { credentialsFile: stores.keysCredentials, readOnly: true });
    const uploaded: string[] = [];
    for await (const o of out.list("")) uploaded.push(o.key);
    assert.deepEqual(uploaded.sort(), local);
    for (const name of local)
      assert.ok(Buffer.from(await out.readBytes(name)).equals(readFileSync(join(outDir, name))), name);

    const misplaced = await cloudtapAsync([
      "stitch",
      "--source",
      dir,
      "--pcap",
      join(work, "x.pcap"),
      "--upload-credentials",
      stores.keysCredentials,
    ]);
    assert.equal(misplaced.status, 2, misplaced.stderr);
    assert.match(misplaced.stderr, /--upload-credentials goes with --upload/);
  });
});
