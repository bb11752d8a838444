import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

test("rpc - readme: the sample runs and prints what the README says", async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const sample = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  const printed = /prints\n\n```\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(sample && printed, "the README starts with a TypeScript sample and what it prints");
  // Written into the package so that "@cloudtap/*" resolve as they would for a user of the package.
  const file = fileURLToPath(new URL("../readme-sample.tmp.ts", import.meta.url));
  writeFileSync(file, sample);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", file], {
      timeout: 60_000,
    });
    assert.equal(stdout, printed);
  } finally {
    rmSync(file, { force: true });
  }
});
