import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_STITCH_PULL_BYTES, pullMessagesPerShard } from "./stitch-stage.js";

test("mesh - a stitcher's pulls share its pull bytes, 1 to 64 messages of 1 MiB each", () => {
  // 8 shards of the default: 4 messages each, 32 MiB in all, under nats-server's 64 MiB max_pending.
  assert.equal(pullMessagesPerShard(DEFAULT_STITCH_PULL_BYTES, 8), 4);
  assert.equal(pullMessagesPerShard(DEFAULT_STITCH_PULL_BYTES, 1), 32);
  assert.equal(pullMessagesPerShard(DEFAULT_STITCH_PULL_BYTES, 0), 32);
  assert.equal(pullMessagesPerShard(DEFAULT_STITCH_PULL_BYTES, 64), 1);
  assert.equal(pullMessagesPerShard(1 << 30, 1), 64);
  for (const shards of [1, 2, 3, 5, 8, 16, 31])
    assert.ok(
      pullMessagesPerShard(DEFAULT_STITCH_PULL_BYTES, shards) * shards * (1 << 20) <=
        DEFAULT_STITCH_PULL_BYTES,
    );
});
