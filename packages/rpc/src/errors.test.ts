import assert from "node:assert/strict";
import { test } from "node:test";
import { Metadata, status } from "@grpc/grpc-js";
import { ErrorCategory, fromStatus, INTERNAL_ERROR_MESSAGE, RpcError, toStatus } from "./errors.js";

class CategorizedError extends Error {
  constructor(
    readonly category: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

test("rpc - toStatus maps every category to its code, keeps the message, never the cause", () => {
  const table: [ErrorCategory, status][] = [
    ["bad-input", status.INVALID_ARGUMENT],
    ["not-found", status.NOT_FOUND],
    ["unavailable", status.UNAVAILABLE],
    ["permission-denied", status.PERMISSION_DENIED],
    ["unauthenticated", status.UNAUTHENTICATED],
    ["deadline", status.DEADLINE_EXCEEDED],
    ["resource-exhausted", status.RESOURCE_EXHAUSTED],
    ["internal", status.INTERNAL],
    ["cancelled", status.CANCELLED],
  ];
  for (const [category, code] of table) {
    const err = new CategorizedError(category, `boom ${category}`, {
      cause: new Error("cause with a secret"),
    });
    assert.deepEqual(toStatus(err), { code, details: `boom ${category}`, category });
  }
});

test("rpc - toStatus: unknown errors and non-errors are INTERNAL with a generic message", () => {
  for (const err of [
    new Error("db password is hunter2"),
    "a string",
    42,
    undefined,
    { category: "nonsense" },
  ]) {
    assert.deepEqual(toStatus(err), {
      code: status.INTERNAL,
      details: INTERNAL_ERROR_MESSAGE,
      category: ErrorCategory.Internal,
    });
  }
  const abort = Object.assign(new Error("aborted"), { name: "AbortError" });
  assert.equal(toStatus(abort).code, status.CANCELLED);
  assert.equal(
    toStatus(new RpcError("resource-exhausted", "too many waiters")).code,
    status.RESOURCE_EXHAUSTED,
  );
});

test("rpc - fromStatus turns a ServiceError into an RpcError with a category", () => {
  const serviceError = Object.assign(new Error("7 PERMISSION_DENIED: nope"), {
    code: status.PERMISSION_DENIED,
    details: "nope",
    metadata: new Metadata(),
  });
  const err = fromStatus(serviceError);
  assert.ok(err instanceof RpcError);
  assert.equal(err.category, ErrorCategory.PermissionDenied);
  assert.equal(err.code, status.PERMISSION_DENIED);
  assert.equal(err.message, "nope");
  assert.equal(
    fromStatus(Object.assign(new Error("x"), { code: status.DATA_LOSS, details: "x" })).category,
    "internal",
  );
  assert.equal(fromStatus(new Error("plain")).category, "internal");
});
