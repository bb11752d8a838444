/** Files an attacker cannot aim: outputs are created new, never through a planted link or with an old mode. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { PositionedFileWriter, SECRET_FILE_MODE } from "./file-writer.js";

describe("egress - file safety", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-file-safety-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("a symbolic link planted at the partial path is not followed (its target is untouched)", async () => {
    const target = join(dir, "victim.txt");
    writeFileSync(target, "precious");
    const partial = join(dir, "out.pcapng.partial");
    symlinkSync(target, partial);
    await assert.rejects(PositionedFileWriter.open(partial, SECRET_FILE_MODE), /EEXIST|ELOOP/);
    assert.equal(readFileSync(target, "utf8"), "precious");
  });

  it("a pre-existing file is not reused (so it cannot keep a looser mode)", async () => {
    const old = join(dir, "old.partial");
    writeFileSync(old, "x", { mode: 0o644 });
    await assert.rejects(PositionedFileWriter.open(old, SECRET_FILE_MODE), /EEXIST/);
    const fresh = join(dir, "fresh.partial");
    const w = await PositionedFileWriter.open(fresh, SECRET_FILE_MODE);
    await w.close();
    assert.equal(statSync(fresh).mode & 0o777, 0o600);
  });
});
