// Builds a package's optional native addon with node-gyp at install (run from the package's folder by its
// "install" script: `node ../../scripts/build-native.mjs <what> <ENV_SWITCH>`). Never fails the install:
// without a compiler, headers or Linux, the package uses its JavaScript path and says so in its reports.
// <ENV_SWITCH>=0 skips the build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";

const [what = "native addon", envSwitch = ""] = process.argv.slice(2);
const root = process.cwd();
const label = `@cloudtap/${basename(root)}`;
const skip = (why) => {
  console.error(`${label}: ${what} not built (${why}); the JavaScript path will be used`);
  process.exit(0);
};
if (process.platform !== "linux") skip("not Linux");
if (envSwitch && process.env[envSwitch] === "0") skip(`${envSwitch}=0`);

// node-gyp: the one the package manager points at, else the one bundled with npm or pnpm next to node.
const prefix = join(dirname(process.execPath), "..");
const candidates = [
  process.env.npm_config_node_gyp,
  join(prefix, "lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
  join(prefix, "lib/node_modules/pnpm/dist/node_modules/node-gyp/bin/node-gyp.js"),
].filter((p) => p && existsSync(p));
if (candidates.length === 0) skip("node-gyp not found");
// Headers installed with node (e.g. /usr/include/node) spare node-gyp a download.
const nodedir = existsSync(join(prefix, "include/node/node_api.h")) ? [`--nodedir=${prefix}`] : [];
const r = spawnSync(process.execPath, [candidates[0], "rebuild", ...nodedir], {
  cwd: root,
  stdio: ["ignore", "pipe", "pipe"],
  encoding: "utf8",
});
if (r.status !== 0)
  skip(
    `node-gyp failed: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-3).join(" | ")}`,
  );
console.error(`${label}: ${what} built`);
