/** The `cloudtap` command as the integration tests run it: a child process, from its bundle (CLOUDTAP_BIN). */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CLOUDTAP_BIN, type ManifestTcpView } from "@cloudtap/test-harness";

export function cloudtap(...args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLOUDTAP_BIN, ...args], {
    encoding: "utf8",
    timeout: 240_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The simulator's manifest of a store it filled. */
export function storeManifest(store: string): ManifestTcpView {
  const dir = join(store, "manifest");
  return JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]!), "utf8")) as ManifestTcpView;
}
