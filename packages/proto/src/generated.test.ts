/**
 * The committed generated code is exactly what `pnpm gen` makes from proto/ (so a proto edit without a
 * regeneration, or a hand edit under gen/, fails here), and the protos pass `buf lint`.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cp, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../../../", import.meta.url));
const bin = join(root, "node_modules", ".bin");
const env = { ...process.env, PATH: `${bin}${delimiter}${process.env["PATH"] ?? ""}` };
const committed = join(root, "packages", "proto", "src", "gen");

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  }
  return out.sort();
}

let scratch = "";
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), "cloudtap-proto-"));
});
after(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

test("proto - buf lint passes", async () => {
  await run(join(bin, "buf"), ["lint", "proto"], { cwd: root, env });
});

test("proto - committed gen/ equals a fresh generation", async () => {
  // The template writes to ../packages/proto/src/gen relative to proto/, so a copy of proto/ in a scratch
  // folder generates into that folder, by the same command as `pnpm gen`.
  await cp(join(root, "proto"), join(scratch, "proto"), { recursive: true });
  await run(join(bin, "buf"), ["generate"], { cwd: join(scratch, "proto"), env });
  const fresh = join(scratch, "packages", "proto", "src", "gen");
  const want = await listFiles(fresh);
  assert.deepEqual(await listFiles(committed), want, "generated file list differs: run `pnpm gen`");
  for (const file of want) {
    const [a, b] = await Promise.all([
      readFile(join(committed, file), "utf8"),
      readFile(join(fresh, file), "utf8"),
    ]);
    assert.ok(a === b, `${file} differs from a fresh generation: run \`pnpm gen\``);
  }
});
