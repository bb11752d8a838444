import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ObjectNotFoundError } from "./errors.js";
import { MemoryStore } from "./memory-store.js";
import { openStore, registerStoreScheme, storeSchemes } from "./open-store.js";

const enc = new TextEncoder();
const dec = new TextDecoder();

describe("object-store - memory backend and the scheme registry", () => {
  it("lists in UTF-8 key order with start-after pages, reads ranges, writes streams, deletes", async () => {
    const store = new MemoryStore();
    for (const k of ["b/2", "a/1", "b/10", "b/é", "c"]) await store.write(k, enc.encode(`v:${k}`));
    assert.deepEqual(
      (await store.listPage("b/", { pageSize: 2 })).objects.map((o) => o.key),
      ["b/10", "b/2"],
    );
    const all = [];
    for await (const o of store.list("b/", { pageSize: 1 })) all.push(o.key);
    assert.deepEqual(all, ["b/10", "b/2", "b/é"]);
    assert.equal(dec.decode(await store.readBytes("a/1", { range: { start: 2, end: 3 } })), "a");
    await store.write(
      "s",
      (async function* () {
        yield enc.encode("ab");
        yield enc.encode("cd");
      })(),
    );
    assert.equal((await store.stat("s"))?.size, 4);
    await store.delete("s");
    await assert.rejects(store.readBytes("s"), ObjectNotFoundError);
  });

  it("memory:// URLs name shared stores; a registered scheme opens; an unknown one is named", () => {
    assert.equal(openStore("memory://x"), openStore("memory://x"));
    assert.notEqual(openStore("memory://x"), openStore("memory://y"));
    const made: string[] = [];
    registerStoreScheme("testscheme", (url) => {
      made.push(url);
      return new MemoryStore(url);
    });
    assert.equal(openStore("testscheme://bucket/p").url, "testscheme://bucket/p");
    assert.deepEqual(made, ["testscheme://bucket/p"]);
    assert.ok(storeSchemes().includes("testscheme"));
    assert.throws(() => openStore("nosuch://bucket"), /no backend for nosuch:\/\//);
  });
});
