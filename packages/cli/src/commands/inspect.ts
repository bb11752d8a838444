import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { parseArgs } from "node:util";
import { listBlobs } from "@cloudtap/fetch";
import { formatInventory, inspectBlob, inspectStore } from "@cloudtap/inspect";
import type { Command } from "../command.js";
import { CommandSummary } from "../command-summaries.js";
import { createProgressLine } from "../progress.js";
import { openDataAndKeyStores, STORE_CREDENTIAL_OPTIONS, STORE_HELP } from "../store-flags.js";
import { requireExistingStore } from "../store-path.js";
import { UsageError } from "../usage-error.js";

export const inspectCommand: Command = {
  name: "inspect",
  summary: CommandSummary.inspect,
  usage: `cloudtap inspect <blob file | store URL> [--keys <store>] [--credentials FILE] [--keys-credentials FILE]
                 [--prefix P] [--verbose] [--json] [--quiet]

  A blob file is read on its own; a directory or file:// URL is read as a store (every data blob under
  <prefix>/data/, every key log under <prefix>/keys/ of --keys or of the store itself).
  On a terminal, a progress line on stderr (blobs of the total listed, rate, time left); --quiet: none.
  Exit status: 0 when no problem was found, 1 when problems were found or the blob or store does not exist,
  2 for a bad command line.
  Examples: cloudtap inspect s3://tap-data/run1 --credentials aws.json; cloudtap inspect gs://tap-data/run1
  --credentials sa.json; cloudtap inspect azblob://acct/netskope/run1 --credentials azure.json.
${STORE_HELP}`,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: {
        keys: { type: "string" },
        ...STORE_CREDENTIAL_OPTIONS,
        prefix: { type: "string", default: "" },
        verbose: { type: "boolean", short: "v", default: false },
        json: { type: "boolean", default: false },
        quiet: { type: "boolean", default: false },
      },
    });
    const target = positionals[0];
    if (!target || positionals.length > 1) throw new UsageError("give exactly one blob file or store URL");
    requireExistingStore("inspect", target);
    if (values.keys) requireExistingStore("--keys", values.keys);
    const isFile =
      !/^[a-z][a-z0-9+.-]*:\/\//i.test(target) && (await stat(target).catch(() => undefined))?.isFile();
    let report: Awaited<ReturnType<typeof inspectStore>>;
    if (isFile) report = await inspectBlob(target, createReadStream(target));
    else {
      const stores = openDataAndKeyStores(
        { data: target, keys: values.keys, dataFlag: "inspect", keysFlag: "--keys" },
        values,
        { readOnly: true },
      );
      const store = stores.data;
      let progress = createProgressLine(io.stderr, { unit: "blobs", quiet: values.quiet });
      if (progress.active) {
        // The total, for the time left: one listing more (a key filter, no reads).
        let total = 0;
        for await (const _ of listBlobs(store, { prefix: values.prefix, signal: io.signal })) total++;
        progress = createProgressLine(io.stderr, { unit: "blobs", totalItems: total, quiet: values.quiet });
      }
      try {
        report = await inspectStore(store, {
          prefix: values.prefix,
          ...(values.keys ? { keyStore: stores.keys } : {}),
          signal: io.signal,
          ...(progress.active ? { onProgress: (n: number) => progress.update({ items: n }) } : {}),
        });
      } finally {
        progress.done();
      }
    }
    if (values.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else io.stdout.write(`${formatInventory(report, { verbose: values.verbose })}\n`);
    return report.problems.length === 0 ? 0 : 1;
  },
};
