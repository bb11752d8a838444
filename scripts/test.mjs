// Runs every *.test.ts file of the workspace under node's own test runner, through tsx.
// Usage: node scripts/test.mjs [substring ...]  (only files whose path contains one of the substrings)
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join, relative } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const roots = ["packages", "services", "integration-tests"];
const skipDirs = new Set(["node_modules", "testdata", "gen", ".git"]);

function walk(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (e.isDirectory()) {
      if (!skipDirs.has(e.name)) walk(join(dir, e.name), out);
    } else if (e.name.endsWith(".test.ts")) {
      out.push(relative(root, join(dir, e.name)));
    }
  }
}

const files = [];
for (const r of roots) walk(join(root, r), files);
files.sort();
const filters = process.argv.slice(2);
const chosen = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (chosen.length === 0) {
  console.error("no test files matched");
  process.exit(1);
}
// The tests run the `cloudtap` command from its bundle (packages/test-harness/src/cloudtap-command.ts):
// built here once, so that test files running at once never rebuild it side by side.
const build = spawnSync(process.execPath, [join(root, "scripts", "build.mjs"), "--if-stale"], {
  cwd: root,
  stdio: "inherit",
});
if (build.status !== 0) {
  console.error("the cloudtap bundle did not build");
  process.exit(1);
}
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-reporter=spec", ...chosen],
  { cwd: root, stdio: "inherit" },
);
process.exit(result.status ?? 1);
