/** A source that does not exist is an error (exit 1), never a run over nothing that says "problems: none". */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { CLOUDTAP_BIN } from "@cloudtap/test-harness";

const dir = mkdtempSync(join(tmpdir(), "cloudtap-missing-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function cloudtap(...args: string[]) {
  const r = spawnSync(process.execPath, [CLOUDTAP_BIN, ...args], { encoding: "utf8" });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

describe("cli - a source that does not exist", () => {
  const missing = join(dir, "no-such-store");
  for (const args of [
    ["inspect", missing],
    ["stitch", "--source", missing, "--pcapng", join(dir, "out.pcapng")],
    ["stitch", "--source", dir, "--keys", missing, "--pcapng", join(dir, "out2.pcapng")],
  ]) {
    it(`${args.slice(0, 2).join(" ")}${args.includes("--keys") ? " --keys" : ""} exits 1 naming it`, () => {
      const r = cloudtap(...args);
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.match(r.stderr, /no such file or directory/);
      assert.doesNotMatch(r.stdout, /problems:\s+none/);
    });
  }
});
