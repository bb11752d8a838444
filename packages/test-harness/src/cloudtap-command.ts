/**
 * How the tests run the `cloudtap` command as a child process: as a user does, through
 * packages/cli/bin/cloudtap.mjs, which rebuilds the bundle when a source is newer and runs it (so `cloudtap
 * up` starts its services from their bundles too). It starts in about 0.3 s of CPU instead of the 1.5 s tsx
 * takes to compile the CLI's sources: the mesh tests ask `cloudtap status` every two seconds, and the suite
 * shares two cores. scripts/test.mjs builds once before the tests, so test files running at once never
 * rebuild side by side.
 */
import { fileURLToPath } from "node:url";

/** The command's entry point. */
export const CLOUDTAP_BIN = fileURLToPath(new URL("../../cli/bin/cloudtap.mjs", import.meta.url));
