/**
 * The core packages stay platform-neutral (docs/architecture.md): they work on Uint8Array and async
 * iterables, take time as input, and import no file system, sockets, processes, threads or SDKs. Pure
 * computation that Node provides (node:crypto, node:zlib) and native-part loading (node:module) are allowed,
 * and so are type-only imports (the fetch side names the object-store interface, not its backends).
 * This test reads the import lines of every non-test source file of the core and fails on one that breaks
 * the rule; test helpers that need Node live outside `src/` (e.g. packages/tls/test/).
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";

const ROOT = new URL("../../../", import.meta.url).pathname;
const CORE = ["tap-format", "pcap", "packet", "flow", "tls", "stitch", "mirror", "fetch"];
/** egress's neutral part: encapsulation, the export policy, remapping, flow hash, batching, scheduling. */
const EGRESS_NEUTRAL = [
  "address-remap.ts",
  "capture-format.ts",
  "datagram-batch.ts",
  "egress.ts",
  "egress-output.ts",
  "egress-spec.ts",
  "errors.ts",
  "export-policy.ts",
  "flow-hash.ts",
  "flow-match.ts",
  "frame-flow.ts",
  "geneve.ts",
  "pcap-over-ip-policy.ts",
  "send-schedule.ts",
  "tunnel-output.ts",
  "vxlan.ts",
];
const FORBIDDEN =
  /from\s+"(node:(fs|fs\/promises|net|dgram|child_process|http|https|http2|worker_threads|cluster|os|tls)|fs|net|dgram|child_process|@aws-sdk\/[^"]*|@google-cloud\/[^"]*|@azure\/[^"]*|@nats-io\/[^"]*|@grpc\/[^"]*|@cloudtap\/(object-store|egress|bus|rpc|mesh|service-kit|local-mesh))"/g;
/** `import type` statements are erased at compile time: a core package may name an adapter's types. */
const TYPE_IMPORT = /import\s+type\s+[^;]*?from\s+"[^"]*";/g;

function sources(dir: string): string[] {
  return readdirSync(dir).filter(
    (f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith(".bench.ts") && !f.startsWith("test-"),
  );
}

/** Forbidden imports of the given files of a package's src/, as "file: module" lines. */
export function forbiddenImports(pkg: string, files: readonly string[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    const text = readFileSync(join(ROOT, "packages", pkg, "src", f), "utf8").replace(TYPE_IMPORT, "");
    for (const m of text.matchAll(FORBIDDEN)) {
      // A core package may import its own name (egress's neutral files import nothing of egress's node part).
      if (m[1] === `@cloudtap/${pkg}`) continue;
      out.push(`packages/${pkg}/src/${f}: ${m[1]}`);
    }
  }
  return out;
}

describe("architecture - core neutrality", () => {
  it("architecture - the core packages import no file system, sockets, processes or SDKs", () => {
    const found = CORE.flatMap((pkg) => forbiddenImports(pkg, sources(join(ROOT, "packages", pkg, "src"))));
    found.push(...forbiddenImports("egress", EGRESS_NEUTRAL));
    assert.deepEqual(found, []);
  });

  it("architecture - the check sees a core file that imports node:fs", () => {
    const text = 'import { readFileSync } from "node:fs";\nimport { x } from "@cloudtap/packet";';
    assert.deepEqual(
      [...text.matchAll(FORBIDDEN)].map((m) => m[1]),
      ["node:fs"],
    );
  });
});
