import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  BadCredentialsError,
  MissingContainerError,
  ObjectNotFoundError,
  PermissionDeniedError,
  StoreTimeoutError,
  StoreUnavailableError,
} from "./errors.js";
import type { ListOptions, ListPage, ObjectInfo } from "./object-store.js";
import { readAll } from "./read-all.js";
import { type ProviderFailure, RemoteStore, wholeOrParts } from "./remote-store.js";
import type { OpenedRead } from "./retry.js";

const FAST = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2, budgetMs: 5000, callTimeoutMs: 5000 };

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/**
 * A backend whose "SDK" is a map in this process: it exercises the skeleton (retries, typed errors, the
 * upload rule, listing through the root), not any provider; the real backends are tested against real
 * emulators in integration-tests.
 */
class MapBackend extends RemoteStore {
  readonly objects = new Map<string, Uint8Array>();
  readonly calls: string[] = [];
  /** Failures the next calls throw, in order (an object with `status`/`kind`). */
  readonly failures: { status?: number; kind?: ProviderFailure["kind"] }[] = [];
  /** Bytes per chunk of a read's body (default: the whole range in one). */
  chunkBytes: number | undefined;
  constructor(root = "base") {
    super({
      url: "map://bucket/base",
      root,
      credentials: { file: "creds.json" },
      container: { kind: "bucket", name: "bucket" },
      permissions: { list: "map:List", get: "map:Get", put: "map:Put", delete: "map:Delete" },
      options: { retry: FAST, partBytes: 4 },
    });
  }
  /** The classifier the skeleton gives calls needing `get` on `key`. */
  classifyGet(key: string) {
    return this.classify("get", key);
  }
  private maybeFail(what: string): void {
    this.calls.push(what);
    const f = this.failures.shift();
    if (f) throw Object.assign(new Error(`injected ${f.kind ?? f.status}`), f);
  }
  protected failureOf(err: unknown): ProviderFailure {
    const e = err as { status?: number; kind?: ProviderFailure["kind"] };
    return { status: e.status, ...(e.kind ? { kind: e.kind } : {}), detail: "Denied by test" };
  }
  async listPage(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    return this.retry("list", "list", undefined, async () => {
      this.maybeFail("list");
      const objects: ObjectInfo[] = [];
      for (const [name, bytes] of [...this.objects].sort())
        if (name.startsWith(this.root.prefix(prefix)))
          this.addListed(objects, name, bytes.length, 1, options);
      return { objects };
    });
  }
  protected async openRead(
    name: string,
    range: { start: number; end?: number | undefined },
  ): Promise<OpenedRead> {
    this.maybeFail(`open ${range.start}-${range.end ?? ""}`);
    const bytes = this.objects.get(name);
    if (!bytes) throw Object.assign(new Error("no such object"), { kind: "object-not-found" });
    const body = bytes.subarray(range.start, range.end);
    return { body: this.chunkBytes ? chunked(body, this.chunkBytes) : [body] };
  }
  protected async putObject(name: string, bytes: Uint8Array): Promise<unknown> {
    this.maybeFail(`put ${bytes.length}`);
    this.objects.set(name, bytes.slice());
    return undefined;
  }
  protected async putParts(name: string, _key: string, parts: AsyncIterable<Uint8Array>): Promise<void> {
    const all: Uint8Array[] = [];
    for await (const p of parts) {
      this.calls.push(`part ${p.length}`);
      all.push(p);
    }
    this.objects.set(name, Buffer.concat(all));
  }
  protected async statObject(name: string): Promise<{ size: number; lastModifiedMs: number }> {
    this.maybeFail("stat");
    const bytes = this.objects.get(name);
    if (!bytes) throw Object.assign(new Error("no such object"), { kind: "object-not-found" });
    return { size: bytes.length, lastModifiedMs: 7 };
  }
  protected async deleteObject(name: string): Promise<unknown> {
    this.maybeFail("delete");
    return this.objects.delete(name);
  }
}

describe("object-store - the remote backends' skeleton", () => {
  it("wholeOrParts: a body up to one part is whole, a larger one its parts, buffer or stream", async () => {
    const bytes = Uint8Array.from({ length: 10 }, (_, i) => i);
    for (const body of [() => bytes.subarray(0, 4), () => chunked(bytes.subarray(0, 4), 3)]) {
      const r = await wholeOrParts(body(), 4);
      assert.deepEqual([...(r.whole ?? [])], [0, 1, 2, 3]);
    }
    assert.equal((await wholeOrParts(chunked(new Uint8Array(0), 1), 4)).whole?.length, 0);
    assert.equal((await wholeOrParts(new Uint8Array(0), 4)).whole?.length, 0);
    for (const body of [() => bytes, () => chunked(bytes, 3)]) {
      const r = await wholeOrParts(body(), 4);
      assert.ok(r.parts);
      const parts: Uint8Array[] = [];
      for await (const p of r.parts) parts.push(p);
      assert.deepEqual(
        parts.map((p) => p.length),
        [4, 4, 2],
      );
      assert.deepEqual([...Buffer.concat(parts)], [...bytes]);
    }
  });

  it("readBytes with the listed size: chunks go straight into allocate's buffer; an object that changed still reads whole", async () => {
    const store = new MapBackend();
    store.chunkBytes = 3;
    const bytes = Uint8Array.from({ length: 10 }, (_, i) => 100 + i);
    store.objects.set("base/k", bytes);
    const sizes: number[] = [];
    const buffers: ArrayBuffer[] = [];
    const allocate = (n: number) => {
      sizes.push(n);
      const b = new ArrayBuffer(n + 5);
      buffers.push(b);
      return new Uint8Array(b, 2, n + 3);
    };
    const read = async (options: Parameters<typeof store.readBytes>[1]) => {
      sizes.length = 0;
      buffers.length = 0;
      const got = await store.readBytes("k", { allocate, ...options });
      assert.equal(got.buffer, buffers.at(-1), "a view of allocate's (last) buffer");
      return [...got];
    };
    assert.deepEqual(await read({ sizeHint: 10 }), [...bytes]);
    assert.deepEqual(sizes, [10]);
    assert.deepEqual(await read({ sizeHint: 10, range: { start: 2, end: 8 } }), [...bytes.subarray(2, 8)]);
    assert.deepEqual(sizes, [6]);
    assert.deepEqual(await read({ sizeHint: 10, range: { start: 7 } }), [...bytes.subarray(7)]);
    assert.deepEqual(sizes, [3]);
    // Grown since listed: a second buffer of the true size; shrunk: the bytes there are.
    assert.deepEqual(await read({ sizeHint: 4 }), [...bytes]);
    assert.deepEqual(sizes, [4, 10]);
    assert.deepEqual(await read({ sizeHint: 20 }), [...bytes]);
    assert.deepEqual(sizes, [20]);
    assert.deepEqual(await read({}), [...bytes]);
    assert.deepEqual(sizes, [10]);
    assert.deepEqual([...(await store.readBytes("k", { sizeHint: 10 }))], [...bytes]);
  });

  it("writes whole (retried) or in parts, lists and stats through the root, reads ranges, deletes", async () => {
    const store = new MapBackend();
    store.failures.push({ status: 503 });
    await store.write("data/a", new TextEncoder().encode("abc"));
    assert.deepEqual(store.calls, ["put 3", "put 3"]);
    await store.write("data/b", chunked(new TextEncoder().encode("0123456789"), 3));
    assert.deepEqual(store.calls.slice(2), ["part 4", "part 4", "part 2"]);
    store.objects.set("base/data/dir/", new Uint8Array(0));
    const skipped: string[] = [];
    const keys = [];
    for await (const o of store.list("data/", { onSkipped: (k) => skipped.push(k) })) keys.push(o.key);
    assert.deepEqual(keys, ["data/a", "data/b"]);
    assert.deepEqual(skipped, ["data/dir/"]);
    assert.equal(
      new TextDecoder().decode(await store.readBytes("data/b", { range: { start: 2, end: 5 } })),
      "234",
    );
    store.calls.length = 0;
    assert.equal((await readAll(store.read("data/b", { range: { start: 3, end: 3 } }))).length, 0);
    assert.deepEqual(store.calls, [], "an empty range opens nothing");
    assert.deepEqual(await store.stat("data/a"), { key: "data/a", size: 3, lastModifiedMs: 7 });
    assert.equal(await store.stat("data/none"), undefined);
    await store.delete("data/a");
    assert.equal(store.objects.has("base/data/a"), false);
  });

  it("turns the backend's failures into the typed errors, naming store, credentials and permission", async () => {
    const store = new MapBackend();
    store.failures.push({ kind: "permission-denied" });
    await assert.rejects(store.readBytes("k"), (err) => {
      assert.ok(err instanceof PermissionDeniedError);
      assert.equal(err.providerPermission, "map:Get");
      assert.match(err.message, /map:\/\/bucket\/base/);
      assert.match(err.message, /creds\.json/);
      return true;
    });
    store.failures.push({ kind: "bad-credentials" });
    await assert.rejects(
      store.listPage(""),
      (err) => err instanceof BadCredentialsError && /Denied by test/.test(err.message),
    );
    store.failures.push({ kind: "missing-container" });
    await assert.rejects(
      store.listPage(""),
      (err) => err instanceof MissingContainerError && err.container === "bucket",
    );
    await assert.rejects(store.readBytes("missing"), ObjectNotFoundError);
    store.failures.push({ kind: "replaced" });
    await assert.rejects(
      store.readBytes("k"),
      (err) => err instanceof ObjectNotFoundError && /replaced while read/.test(err.message),
    );
    store.failures.push({ status: 503 }, { status: 503 }, { status: 503 });
    await assert.rejects(store.listPage(""), StoreUnavailableError);
    assert.equal(store.failures.length, 0, "three attempts");
  });

  it("a call that timed out is a timeout, whatever the backend says of its error", async () => {
    const store = new MapBackend();
    const failure = store.classifyGet("k")(
      Object.assign(new Error("aborted"), { kind: "object-not-found" }),
      true,
    );
    assert.equal(failure.retryable, true);
    assert.ok(failure.error instanceof StoreTimeoutError);
  });
});
