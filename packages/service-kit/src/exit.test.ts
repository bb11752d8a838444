import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, describe, it } from "node:test";
import {
  EXIT_REASON_FILE_ENV,
  EXIT_WITH_PARENT_ENV,
  exitWithParent,
  isPermanentExit,
  recordExitReason,
} from "./exit.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-exit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("service exits", () => {
  it("writes the exit reason as one line where the supervisor asked, nowhere otherwise", () => {
    const file = join(dir, "reason");
    recordExitReason("store cannot be opened:\n  /x: no such file or directory", {
      [EXIT_REASON_FILE_ENV]: file,
    });
    assert.equal(readFileSync(file, "utf8"), "store cannot be opened: /x: no such file or directory\n");
    recordExitReason("ignored", {});
  });

  it("2 and 3 are permanent, 1 is not", () => {
    assert.deepEqual([0, 1, 2, 3, null].map(isPermanentExit), [false, false, true, true, false]);
  });

  it("shuts down when stdin closes, only when asked to watch it", async () => {
    const reasons: string[] = [];
    const shutdown = {
      shutdown: async (reason: string) => {
        reasons.push(reason);
        return 0;
      },
    };
    const unwatched = new PassThrough();
    assert.equal(exitWithParent(shutdown, {}, unwatched), false);
    unwatched.end();
    const stdin = new PassThrough();
    assert.equal(exitWithParent(shutdown, { [EXIT_WITH_PARENT_ENV]: "stdin" }, stdin), true);
    stdin.write("anything the parent writes is ignored");
    assert.deepEqual(reasons, []);
    stdin.end();
    await new Promise((r) => setImmediate(r));
    assert.match(reasons[0] ?? "", /supervising process is gone/);
  });
});
