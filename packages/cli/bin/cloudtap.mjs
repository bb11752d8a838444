#!/usr/bin/env node
// The `cloudtap` command: runs the bundle in ../dist, rebuilding it first when a source is newer (a
// workspace checkout; scripts/build.mjs).
import { build } from "../../../scripts/build.mjs";

await build({ ifStale: true });
await import("../dist/cloudtap.mjs");
