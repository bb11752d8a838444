/**
 * A source store on its own thread, against s3rver (a real S3-compatible server, its own process on
 * 127.0.0.1) through `@aws-sdk/client-s3` in the worker: every call gives what the same store opened on
 * this thread gives, errors of the same class with the same message, and the thread neither sticks on a
 * stream left early nor keeps the process alive when idle.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import {
  BadCredentialsError,
  isObjectNotFound,
  type ObjectStore,
  openStore,
  ReadOnlyStoreError,
  readAll,
} from "@cloudtap/object-store";
import { type S3rver, startS3rver } from "@cloudtap/test-harness";
import { StoreThreadError } from "./errors.js";
import { openStoreOnThread, type StoreOnThread } from "./store-thread.js";

describe("store thread (s3rver)", { timeout: 120_000 }, () => {
  let s3: S3rver;
  let work: string;
  let url: string;
  let credentialsFile: string;
  let direct: ObjectStore;
  let threaded: StoreOnThread;
  const big = randomBytes(3 * 1024 * 1024 + 17);
  const small = Array.from({ length: 5 }, (_, i) => randomBytes(1000 + i * 4096));

  before(async () => {
    registerCloudStores();
    work = mkdtempSync(join(tmpdir(), "cloudtap-store-thread-"));
    const pair = { accessKeyId: "THREADKEY00000000001", secretAccessKey: "thread-secret" };
    s3 = await startS3rver({ buckets: ["tap"], keyPairs: [pair] });
    url = `s3://tap/t?endpoint=${s3.endpoint}&path_style=true&region=us-east-1`;
    credentialsFile = join(work, "s3.json");
    writeFileSync(
      credentialsFile,
      JSON.stringify({ access_key_id: pair.accessKeyId, secret_access_key: pair.secretAccessKey }),
    );
    const writer = openStore(url, { credentialsFile });
    await writer.write("big.bin", big);
    for (const [i, b] of small.entries()) await writer.write(`small/${i}.bin`, b);
    direct = openStore(url, { credentialsFile, readOnly: true });
    threaded = openStoreOnThread(url, { credentialsFile });
  });
  after(async () => {
    await threaded?.close();
    await s3?.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  test("store thread: the same listing, pages, stats and bytes as the store on this thread", async () => {
    assert.equal(threaded.url, direct.url);
    assert.deepEqual(
      await threaded.listPage("small/", { pageSize: 2 }),
      await direct.listPage("small/", { pageSize: 2 }),
    );
    const all = [];
    for await (const o of threaded.list("", { pageSize: 2 })) all.push(o);
    const expected = [];
    for await (const o of direct.list("", { pageSize: 2 })) expected.push(o);
    assert.equal(all.length, 6);
    assert.deepEqual(all, expected);
    assert.deepEqual(await threaded.stat("big.bin"), await direct.stat("big.bin"));
    assert.equal(await threaded.stat("none.bin"), undefined);
    assert.deepEqual(Buffer.from(await threaded.readBytes("big.bin")), big);
    assert.deepEqual(
      Buffer.from(await threaded.readBytes("big.bin", { range: { start: 1000, end: 70_000 } })),
      big.subarray(1000, 70_000),
    );
    for (const [i, b] of small.entries())
      assert.deepEqual(Buffer.from(await threaded.readBytes(`small/${i}.bin`)), b);
  });

  test("store thread: a whole read goes into the caller's buffer, many at once", async () => {
    const pool = new ArrayBuffer(8 * 1024 * 1024);
    const got = await threaded.readBytes("small/3.bin", { allocate: (n) => new Uint8Array(pool, 4096, n) });
    assert.equal(got.buffer, pool);
    assert.equal(got.byteOffset, 4096);
    assert.deepEqual(Buffer.from(got), small[3]);
    // With the listed size the caller's buffer itself goes to the thread and back: an ArrayBuffer is
    // transferred (detached here meanwhile), shared memory written in place, a pooled Buffer (which
    // postMessage copies) filled from the copy.
    const size = small[3]!.length;
    const lent = new ArrayBuffer(size + 8192);
    const inPlace = await threaded.readBytes("small/3.bin", {
      sizeHint: size,
      allocate: (n) => new Uint8Array(lent, 4096, n),
    });
    assert.equal(lent.byteLength, 0, "transferred, not copied");
    assert.equal(inPlace.byteOffset, 4096);
    assert.equal(inPlace.buffer.byteLength, size + 8192);
    assert.deepEqual(Buffer.from(inPlace), small[3]);
    const shared = new SharedArrayBuffer(size + 100);
    const sharedView = new Uint8Array(shared, 50, size);
    const viaShared = await threaded.readBytes("small/3.bin", { sizeHint: size, allocate: () => sharedView });
    assert.ok(viaShared.buffer instanceof SharedArrayBuffer);
    assert.deepEqual(Buffer.from(sharedView), small[3], "written in place");
    const tiny = Buffer.from("0123456789");
    assert.equal(tiny.buffer.byteLength, Buffer.poolSize, "a pooled Buffer");
    const asked: number[] = [];
    const pooled = await threaded.readBytes("small/0.bin", {
      range: { start: 0, end: 10 },
      sizeHint: small[0]!.length,
      allocate: (n) => {
        asked.push(n);
        return tiny;
      },
    });
    assert.deepEqual(asked, [10], "the range's length");
    assert.equal(pooled.buffer, tiny.buffer);
    assert.deepEqual(Buffer.from(pooled), small[0]!.subarray(0, 10));
    // Listed smaller than it is (the object changed): a second buffer of the true size.
    const sizes: number[] = [];
    const grown = await threaded.readBytes("small/4.bin", {
      sizeHint: 100,
      allocate: (n) => {
        sizes.push(n);
        return new Uint8Array(n);
      },
    });
    assert.deepEqual(sizes, [100, small[4]!.length]);
    assert.deepEqual(Buffer.from(grown), small[4]);

    // The worker's buffers come back for reuse; concurrent reads each get their own bytes.
    const again = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        threaded.readBytes(`small/${i % 5}.bin`, {
          allocate: (n) => new Uint8Array(n),
          ...(i % 2 ? { sizeHint: small[i % 5]!.length } : {}),
        }),
      ),
    );
    for (const [i, b] of again.entries()) assert.deepEqual(Buffer.from(b), small[i % 5]);
  });

  test("store thread: a streamed read with flow control; one left early does not hold the thread", async () => {
    assert.deepEqual(Buffer.from(await readAll(threaded.read("big.bin"))), big);
    assert.deepEqual(
      Buffer.from(await readAll(threaded.read("big.bin", { range: { start: 5, end: 2_000_000 } }))),
      big.subarray(5, 2_000_000),
    );
    for await (const c of threaded.read("big.bin")) {
      assert.ok(c.length > 0);
      break;
    }
    assert.deepEqual(Buffer.from(await threaded.readBytes("small/0.bin")), small[0]);
  });

  test("store thread: errors of the store's own classes, with its messages", async () => {
    const failure = (p: Promise<unknown>) =>
      p.then(
        () => assert.fail("resolved"),
        (e: unknown) => e as Error,
      );
    const theirs = await failure(direct.readBytes("missing.bin"));
    const ours = await failure(threaded.readBytes("missing.bin"));
    assert.ok(isObjectNotFound(ours), String(ours));
    assert.equal(ours.message, theirs.message);
    assert.equal(ours.name, theirs.name);
    const fields = (e: Error) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== "cause"));
    assert.deepEqual(fields(ours), fields(theirs));
    assert.ok(Object.keys(fields(ours)).includes("key"));
    await assert.rejects(readAll(threaded.read("missing.bin")), (e) => isObjectNotFound(e));

    const badFile = join(work, "bad.json");
    writeFileSync(badFile, JSON.stringify({ access_key_id: "NOSUCHKEY00000000001", secret_access_key: "x" }));
    const bad = openStoreOnThread(url, { credentialsFile: badFile });
    try {
      const expected = await failure(
        openStore(url, { credentialsFile: badFile, readOnly: true }).listPage(""),
      );
      const err = await failure(bad.listPage(""));
      assert.ok(err instanceof BadCredentialsError, String(err));
      assert.equal(err.message, expected.message);
      assert.match(err.message, /bad\.json/);
      assert.equal(err.code, "bad-credentials");
      assert.equal(err.category, "unauthenticated");
    } finally {
      await bad.close();
    }
    await assert.rejects(threaded.write("x", new Uint8Array(1)), ReadOnlyStoreError);
    await assert.rejects(threaded.delete("x"), ReadOnlyStoreError);
  });

  test("store thread: an aborted read rejects with the signal's reason; a closed store fails typed", async () => {
    const abort = new AbortController();
    const pending = threaded.readBytes("big.bin", { signal: abort.signal });
    abort.abort(new Error("given up"));
    await assert.rejects(pending, /given up/);
    assert.deepEqual(Buffer.from(await threaded.readBytes("small/1.bin")), small[1]);
    // A streamed read aborted after its first chunk: the next step rejects, queued chunks or not.
    const streamAbort = new AbortController();
    const it = threaded.read("big.bin", { signal: streamAbort.signal })[Symbol.asyncIterator]();
    assert.ok(((await it.next()).value as Uint8Array).length > 0);
    await new Promise((r) => setTimeout(r, 50));
    streamAbort.abort(new Error("stream given up"));
    await assert.rejects(it.next(), /stream given up/);
    assert.deepEqual(Buffer.from(await threaded.readBytes("small/2.bin")), small[2]);

    const other = openStoreOnThread(url, { credentialsFile });
    assert.equal((await other.listPage("small/")).objects.length, 5);
    const inFlight = assert.rejects(other.readBytes("big.bin"), StoreThreadError);
    await other.close();
    await inFlight;
    await assert.rejects(other.stat("big.bin"), StoreThreadError);
  });

  test("store thread: an idle thread does not keep the process alive", () => {
    const script = `
      import { openStoreOnThread } from ${JSON.stringify(new URL("./store-thread.ts", import.meta.url).href)};
      const store = openStoreOnThread(${JSON.stringify(url)}, { credentialsFile: ${JSON.stringify(credentialsFile)} });
      const bytes = await store.readBytes("small/2.bin");
      console.log(bytes.length);
    `;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout.trim(), String(small[2]!.length));
  });
});
