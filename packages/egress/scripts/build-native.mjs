// Builds the optional native UDP sender (native/sendmmsg.c) with node-gyp at install. Never fails the
// install: without a compiler, headers or Linux, egress uses node:dgram and says so in its reports.
// CLOUDTAP_EGRESS_NATIVE=0 skips the build.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const skip = (why) => {
  console.error(`@cloudtap/egress: native sender not built (${why}); node:dgram will be used`);
  process.exit(0);
};
if (process.platform !== "linux") skip("not Linux");
if (process.env.CLOUDTAP_EGRESS_NATIVE === "0") skip("CLOUDTAP_EGRESS_NATIVE=0");

// node-gyp: the one the package manager points at, else the one bundled with npm next to node.
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
console.error("@cloudtap/egress: native sendmmsg/GSO sender built");
