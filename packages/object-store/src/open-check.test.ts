import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { BadCredentialsError, StoreUnreachableError } from "./errors.js";
import { MemoryStore } from "./memory-store.js";
import type { ObjectStore } from "./object-store.js";
import { isStoreCannotOpen, openCheckedStore, StoreCannotOpenError } from "./open-check.js";
import { openStore } from "./open-store.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-open-check-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A memory store whose listing fails with `err` (a remote store's answer). */
function failingList(err: Error): ObjectStore {
  const store = new MemoryStore("remote://x");
  return Object.assign(Object.create(store) as ObjectStore, {
    url: "remote://x",
    listPage: async () => {
      throw err;
    },
  });
}
const context = { store: "s3://tap-data", credentials: { file: "aws.json" } };

describe("openCheckedStore", () => {
  it("opens an existing directory", async () => {
    const store = await openCheckedStore(dir, () => openStore(dir, { readOnly: true }));
    assert.ok(store.url.startsWith("file:"));
  });

  it("a directory that does not exist cannot be opened, named as given", async () => {
    const missing = join(dir, "nope");
    await assert.rejects(
      openCheckedStore(missing, () => openStore(missing)),
      (err: unknown) => {
        assert.ok(err instanceof StoreCannotOpenError);
        assert.equal(err.message, `store cannot be opened: ${missing}: no such file or directory`);
        return true;
      },
    );
  });

  it("a file is not a directory store", async () => {
    const file = join(dir, "a-file");
    writeFileSync(file, "x");
    await assert.rejects(
      openCheckedStore(file, () => openStore(file)),
      /not a directory/,
    );
  });

  it("refused credentials cannot be opened; an unreachable store is its own (retryable) error", async () => {
    await assert.rejects(
      openCheckedStore("s3://tap-data", () =>
        failingList(new BadCredentialsError(context, "unknown key id")),
      ),
      (err: unknown) => isStoreCannotOpen(err) && /s3:\/\/tap-data: credentials refused/.test(String(err)),
    );
    await assert.rejects(
      openCheckedStore("s3://tap-data", () =>
        failingList(new StoreUnreachableError(context, "ECONNREFUSED")),
      ),
      (err: unknown) => err instanceof StoreUnreachableError,
    );
  });

  it("an unsupported URL cannot be opened", async () => {
    await assert.rejects(
      openCheckedStore("nosuch://x", () => openStore("nosuch://x")),
      (err: unknown) => isStoreCannotOpen(err),
    );
  });
});
