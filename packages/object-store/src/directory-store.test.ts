import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import {
  InvalidKeyError,
  ObjectNotFoundError,
  openStore,
  readAll,
  UnsupportedStoreUrlError,
} from "./index.js";
import type { ObjectStore } from "./object-store.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("object-store - directory backend", () => {
  let dir: string;
  let store: ObjectStore;
  // Chosen so that directory order and key order differ: "a-c" < "a/b" < "a0" in byte order ('-' < '/' < '0').
  const keys = [
    "a/b",
    "a-c",
    "a0",
    "a/b2/x",
    "a/b2/y",
    "p/data/2026/11/25/01/gw/1.ctap",
    "p/data/2026/11/25/02/gw/2.ctap",
    "z",
  ];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "cloudtap-store-"));
    store = openStore(dir);
    for (const k of keys) await store.write(k, enc.encode(`content of ${k}`));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("lists every key in byte order", async () => {
    const got: string[] = [];
    for await (const o of store.list("")) got.push(o.key);
    assert.deepEqual(got, [...keys].sort());
  });

  it("lists by prefix, including a prefix that ends inside a name", async () => {
    const got: string[] = [];
    for await (const o of store.list("a/b")) got.push(o.key);
    assert.deepEqual(got, ["a/b", "a/b2/x", "a/b2/y"]);
    const data: string[] = [];
    for await (const o of store.list("p/data/2026/11/25/")) data.push(o.key);
    assert.deepEqual(data, ["p/data/2026/11/25/01/gw/1.ctap", "p/data/2026/11/25/02/gw/2.ctap"]);
  });

  it("pages with a start-after cursor", async () => {
    const sorted = [...keys].sort();
    const got: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await store.listPage("", {
        pageSize: 3,
        ...(cursor === undefined ? {} : { startAfter: cursor }),
      });
      got.push(...page.objects.map((o) => o.key));
      cursor = page.nextStartAfter;
      pages++;
    } while (cursor !== undefined);
    assert.deepEqual(got, sorted);
    assert.equal(pages, 3);
    const rest: string[] = [];
    for await (const o of store.list("", { startAfter: "a/b2/x" })) rest.push(o.key);
    assert.deepEqual(rest, sorted.slice(sorted.indexOf("a/b2/x") + 1));
  });

  it("reads whole objects and ranges, and sizes them", async () => {
    assert.equal(dec.decode(await store.readBytes("a-c")), "content of a-c");
    assert.equal(dec.decode(await store.readBytes("a-c", { range: { start: 3, end: 7 } })), "tent");
    assert.equal(dec.decode(await store.readBytes("a-c", { range: { start: 11 } })), "a-c");
    assert.equal(dec.decode(await store.readBytes("a-c", { range: { start: 11, end: 1000 } })), "a-c");
    assert.equal((await store.stat("a-c"))?.size, 14);
    assert.equal(await store.stat("nope"), undefined);
  });

  it("streams writes from an async iterable", async () => {
    async function* body() {
      for (let i = 0; i < 100; i++) yield enc.encode(`${i},`);
    }
    await store.write("streamed/obj", body());
    const text = dec.decode(await store.readBytes("streamed/obj"));
    assert.equal(text.split(",").length, 101);
  });

  it("leaves neither object nor temporary file when a streamed write fails", async () => {
    async function* failing() {
      yield enc.encode("partial");
      throw new Error("source broke");
    }
    await assert.rejects(store.write("broken/obj", failing()), /source broke/);
    assert.equal(await store.stat("broken/obj"), undefined);
    assert.deepEqual(await readdir(join(dir, "broken")), []);
  });

  it("replaces atomically: a concurrent reader sees the old or the new object whole", async () => {
    const a = new Uint8Array(4 << 20).fill(0x61);
    const b = new Uint8Array(4 << 20).fill(0x62);
    await store.write("atomic", a);
    const reads: Promise<Uint8Array>[] = [];
    const writing = store.write("atomic", b);
    for (let i = 0; i < 5; i++) reads.push(store.readBytes("atomic"));
    await writing;
    for (const r of await Promise.all(reads)) {
      assert.equal(r.length, a.length);
      assert.ok(r.every((x) => x === r[0]));
    }
  });

  it("object-store - a sensitive object is created 0600, others 0644 (less the umask), streamed or not", async () => {
    const previous = process.umask(0o022);
    try {
      async function* body() {
        yield enc.encode("CLIENT_RANDOM ...");
      }
      await store.write("modes/keys.keylog", enc.encode("CLIENT_RANDOM ..."), { sensitive: true });
      await store.write("modes/streamed.pcapng", body(), { sensitive: true });
      await store.write("modes/plain.ctap", enc.encode("x"));
      const mode = async (k: string) => (await stat(join(dir, k))).mode & 0o777;
      assert.equal(await mode("modes/keys.keylog"), 0o600);
      assert.equal(await mode("modes/streamed.pcapng"), 0o600);
      assert.equal(await mode("modes/plain.ctap"), 0o644);
    } finally {
      process.umask(previous);
    }
  });

  it("deletes, and deleting a missing key is not an error", async () => {
    await store.write("gone", enc.encode("x"));
    await store.delete("gone");
    await store.delete("gone");
    await assert.rejects(readAll(store.read("gone")), ObjectNotFoundError);
  });

  it("rejects keys that would escape the root or collide with temporary files", async () => {
    for (const k of ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "x/.ctap-tmp-1"]) {
      await assert.rejects(store.write(k, enc.encode("x")), InvalidKeyError, k);
    }
  });

  it("opens file:// URLs and names unsupported schemes", async () => {
    const viaUrl = openStore(pathToFileURL(dir).href);
    assert.equal(dec.decode(await viaUrl.readBytes("z")), "content of z");
    assert.throws(() => openStore("s3://bucket/prefix"), UnsupportedStoreUrlError);
  });
});
