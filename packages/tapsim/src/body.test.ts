import assert from "node:assert/strict";
import { test } from "node:test";
import { BODY_CHUNK_BYTES, bodyBytes, bodyChunks } from "./body.js";

test("body - every length is exact, chunked at the chunk size", () => {
  for (const length of [0, 1, 31, 32, 33, BODY_CHUNK_BYTES - 1, BODY_CHUNK_BYTES, BODY_CHUNK_BYTES * 3 + 5]) {
    for (const contentType of ["application/json", "text/plain", "application/octet-stream"]) {
      const chunks = [...bodyChunks({ length, contentType, seed: "b" })];
      assert.equal(
        chunks.reduce((n, c) => n + c.length, 0),
        length,
        `${contentType} ${length}`,
      );
      assert.ok(
        chunks.every((c) => c.length > 0 && c.length <= BODY_CHUNK_BYTES),
        "chunks are non-empty and bounded",
      );
    }
  }
});

test("body - JSON bodies parse, text bodies are printable, and the seed fixes the content", () => {
  for (const length of [36, 37, 100, BODY_CHUNK_BYTES - 1, BODY_CHUNK_BYTES + 1, 3 * BODY_CHUNK_BYTES]) {
    const json = bodyBytes({ length, contentType: "application/json", seed: "j" });
    const parsed = JSON.parse(new TextDecoder().decode(json)) as { id: string; data: string };
    assert.match(parsed.id, /^[0-9a-f]{16}$/);
  }
  const text = bodyBytes({ length: 5000, contentType: "text/css", seed: "t" });
  assert.ok(
    text.every((b) => b >= 0x20 && b < 0x7f),
    "text is printable ASCII",
  );
  const a = bodyBytes({ length: 4096, contentType: "application/octet-stream", seed: "x" });
  assert.deepEqual(bodyBytes({ length: 4096, contentType: "application/octet-stream", seed: "x" }), a);
  assert.notDeepEqual(bodyBytes({ length: 4096, contentType: "application/octet-stream", seed: "y" }), a);
});
