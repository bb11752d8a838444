import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MessageChannel } from "node:worker_threads";
import {
  BadCredentialsError,
  isObjectNotFound,
  ObjectNotFoundError,
  ObjectStoreError,
  PermissionDeniedError,
  StoreTimeoutError,
} from "./errors.js";
import { StoreCannotOpenError } from "./open-check.js";
import { ReadOnlyStoreError } from "./read-only-store.js";
import { reviveError, type SerializedError, serializeError } from "./thread-errors.js";

/** Through a real message port, as between threads (structured clone). */
async function acrossThreads(err: unknown): Promise<Error> {
  const { port1, port2 } = new MessageChannel();
  const got = new Promise<SerializedError>((resolve) => port2.once("message", resolve));
  port1.postMessage(serializeError(err));
  const s = await got;
  port1.close();
  return reviveError(s);
}

const fields = (e: Error) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== "cause"));
const context = {
  store: "s3://bucket/prefix",
  credentials: { file: "/etc/cloudtap/aws.json" },
  key: "data/2026/x.ctap",
};

describe("object-store - errors across threads", () => {
  it("a store's errors come back of their class, with their fields and message", async () => {
    const errors: Error[] = [
      new ObjectNotFoundError("data/a.ctap", { store: "gs://b/p" }),
      new BadCredentialsError(context, "InvalidAccessKeyId", { cause: new Error("sdk detail") }),
      new PermissionDeniedError(context, "get", "s3:GetObject"),
      new StoreTimeoutError(context, 30_000),
      new ReadOnlyStoreError("s3://bucket/prefix", "k", "write"),
      new StoreCannotOpenError("azblob://acct/c", "credentials refused"),
    ];
    for (const original of errors) {
      const back = await acrossThreads(original);
      assert.equal(Object.getPrototypeOf(back), Object.getPrototypeOf(original), original.name);
      assert.equal(back.name, original.name);
      assert.equal(back.message, original.message);
      assert.equal(back.stack, original.stack);
      assert.deepEqual(fields(back), fields(original));
      assert.equal(back.cause, undefined, "an SDK's cause stays behind");
    }
    const notFound = await acrossThreads(new ObjectNotFoundError("k"));
    assert.ok(isObjectNotFound(notFound));
    const denied = (await acrossThreads(
      new PermissionDeniedError(context, "list", "s3:ListBucket"),
    )) as PermissionDeniedError;
    assert.ok(denied instanceof ObjectStoreError);
    assert.equal(denied.permission, "list");
    assert.equal(denied.code, "permission-denied");
    assert.equal(denied.category, "permission-denied");
    assert.deepEqual(denied.context, context);
  });

  it("other errors come back as errors with their name and message; a field that does not clone is left out", async () => {
    const odd = Object.assign(new Error("boom"), { name: "SdkError", status: 503, retry: () => 1 });
    const back = await acrossThreads(odd);
    assert.equal(Object.getPrototypeOf(back), Error.prototype);
    assert.equal(back.name, "SdkError");
    assert.equal(back.message, "boom");
    assert.deepEqual(fields(back), { name: "SdkError", status: 503 });
    const type = await acrossThreads(new TypeError("bad type"));
    assert.ok(type instanceof TypeError);
    const thrown = await acrossThreads("a string");
    assert.equal(thrown.message, "a string");
  });
});
