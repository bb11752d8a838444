import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { keysCredentialsFor } from "./store-flags.js";

describe("cli - store flags: the key store's credentials file", () => {
  it("--keys-credentials wins", () => {
    assert.equal(
      keysCredentialsFor("s3://data", "s3://keys", { credentials: "d.json", "keys-credentials": "k.json" }),
      "k.json",
    );
  });
  it("--credentials serves a key store of the same remote scheme (stitch and up alike)", () => {
    assert.equal(keysCredentialsFor("s3://data", "s3://keys", { credentials: "d.json" }), "d.json");
  });
  it("no file for a key store of another scheme or a local one: its own chain or none", () => {
    assert.equal(keysCredentialsFor("s3://data", "azblob://acct/keys", { credentials: "d.json" }), undefined);
    assert.equal(keysCredentialsFor("s3://data", "keys-dir", { credentials: "d.json" }), undefined);
  });
});
