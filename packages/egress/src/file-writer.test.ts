import assert from "node:assert/strict";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { PositionedFileWriter } from "./file-writer.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-file-writer-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("egress - positioned file writer", () => {
  it("puts every chunk at its place, whatever order the writes complete in", async () => {
    const path = join(dir, "a.bin");
    const w = await PositionedFileWriter.open(path, 0o600, 64 * 1024);
    const expected: number[] = [];
    let done = 0;
    let waits = 0;
    for (let i = 0; i < 200; i++) {
      const chunk = new Uint8Array(1 + ((i * 7919) % 20_000)).fill(i & 0xff);
      for (const b of chunk) expected.push(b);
      const wait = w.write(chunk, () => done++);
      if (wait) {
        waits++;
        await wait;
      }
    }
    await w.close();
    assert.equal(done, 200, "every chunk's completion callback ran");
    assert.ok(waits > 0, "a 64 KiB bound made the writer push back");
    assert.equal(w.bytesWritten, expected.length);
    assert.deepEqual(readFileSync(path), Buffer.from(expected));
    assert.equal(statSync(path).mode & 0o777, 0o600);
  });

  it("an empty file is created on open", async () => {
    const path = join(dir, "empty.bin");
    const w = await PositionedFileWriter.open(path, 0o644);
    await w.close();
    assert.equal(statSync(path).size, 0);
  });

  it("a file that cannot be created rejects the open", async () => {
    await assert.rejects(PositionedFileWriter.open(join(dir, "missing", "x.bin"), 0o644), /ENOENT/);
  });

  it("a failed write is kept and thrown by the next write and by close (ENOSPC on /dev/full)", async (t) => {
    if (!existsSync("/dev/full")) {
      t.skip("no /dev/full on this system");
      return;
    }
    // An existing device: opened here, since the writer's own open never reuses an existing path.
    const w = PositionedFileWriter.fromDescriptor("/dev/full", openSync("/dev/full", "w"));
    let called = false;
    await w.write(new Uint8Array(4096), () => {
      called = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(called, "the completion callback runs for a failed write too");
    assert.match(String(w.error), /ENOSPC/);
    assert.throws(() => w.write(new Uint8Array(1)), /ENOSPC/);
    await assert.rejects(w.close(), /ENOSPC/);
  });

  it("write after close is refused", async () => {
    const w = await PositionedFileWriter.open(join(dir, "closed.bin"), 0o644);
    await w.close();
    assert.throws(() => w.write(new Uint8Array(1)), /write after close/);
  });
});
