/** Keeps the README's sample honest: it is extracted and run. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { it } from "node:test";

it("stitch - README sample runs and prints what it says", () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const code = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, "README has a ts sample");
  const said = /prints `([^`]+)`/.exec(readme)?.[1];
  assert.ok(said, "README says what the sample prints");
  const file = new URL("./readme-sample.tmp.ts", import.meta.url);
  writeFileSync(file, code);
  try {
    const out = execFileSync(process.execPath, ["--import", "tsx", file.pathname], { encoding: "utf8" });
    assert.equal(out.trim(), said, "the sample's output");
  } finally {
    rmSync(file, { force: true });
  }
});
