/**
 * The fetch half of a stitch from a store, alone (run by the cloud-stores bench as its own process, as the
 * stitch runs): the same backend (`openStore` of the registered cloud schemes), the same listing
 * (`listBlobs`) and the same read-ahead as `cloudtap stitch` from a remote store (64 blobs, 64 MiB), every
 * blob's bytes counted and released, no stitching. Prints JSON: `seconds` in all, `openSeconds` until the
 * first blob was listed (SDK load, credentials, the first list page), and `bytes`.
 *
 * Usage: node --import tsx bench/cloud-fetch-only.ts <store-url> <credentials-file> [depth]
 */
import { registerCloudStores } from "@cloudtap/cloud-stores";
import { listBlobs, readAhead } from "@cloudtap/fetch";
import { openStore } from "@cloudtap/object-store";

const [url, credentialsFile, depthArg] = process.argv.slice(2);
if (!url || !credentialsFile)
  throw new Error("usage: cloud-fetch-only.ts <store-url> <credentials-file> [depth]");
const started = process.hrtime.bigint();
registerCloudStores();
const store = openStore(url, { credentialsFile, readOnly: true });
let openSeconds: number | undefined;
const listed = (async function* () {
  for await (const blob of listBlobs(store)) {
    openSeconds ??= Number(process.hrtime.bigint() - started) / 1e9;
    yield blob;
  }
})();
let bytes = 0;
for await (const fetched of readAhead(listed, {
  depth: Number(depthArg ?? 64),
  budgetBytes: 64 * 1024 * 1024,
})) {
  for await (const chunk of fetched.chunks()) bytes += chunk.length;
  fetched.release();
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
process.stdout.write(`${JSON.stringify({ seconds, openSeconds: openSeconds ?? seconds, bytes })}\n`);
