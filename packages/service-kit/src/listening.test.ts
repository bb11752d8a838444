import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { LISTEN_FILE_ENV, ListenRole, parseListenReport, recordListening } from "./listening.js";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-listen-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("listen report", () => {
  it("records each bound server by role with this pid, the file replaced whole", () => {
    const file = join(dir, "stitcher-1.listen");
    const env = { [LISTEN_FILE_ENV]: file };
    recordListening(ListenRole.Metrics, 40001, env);
    assert.deepEqual(parseListenReport(readFileSync(file, "utf8")), {
      pid: process.pid,
      ports: { metrics: 40001 },
    });
    recordListening(ListenRole.Rpc, 40002, env);
    assert.deepEqual(parseListenReport(readFileSync(file, "utf8")), {
      pid: process.pid,
      ports: { metrics: 40001, rpc: 40002 },
    });
    // No temporary file is left beside it.
    assert.deepEqual(readdirSync(dir), ["stitcher-1.listen"]);
  });

  it("writes nothing unless the supervisor asked, or for a server not started", () => {
    const file = join(dir, "unasked.listen");
    recordListening(ListenRole.Rpc, 40003, {});
    recordListening(ListenRole.Rpc, undefined, { [LISTEN_FILE_ENV]: file });
    assert.equal(existsSync(file), false);
  });

  it("a write that fails throws: the supervisor is waiting for it", () => {
    assert.throws(
      () => recordListening(ListenRole.Rpc, 40004, { [LISTEN_FILE_ENV]: join(dir, "no", "such") }),
      {
        code: "ENOENT",
      },
    );
  });

  it("what is not a report reads as none", () => {
    for (const text of ["", "{", "null", '{"ports":{"rpc":1}}', '{"pid":1}', '{"pid":"1","ports":{}}'])
      assert.equal(parseListenReport(text), undefined, text);
    // Ports out of range, or of roles it does not know, are left out.
    assert.deepEqual(parseListenReport('{"pid":7,"ports":{"rpc":0,"metrics":70000,"other":5}}'), {
      pid: 7,
      ports: {},
    });
  });
});
