/**
 * The end of a `cloudtap stitch` run: the run report of @cloudtap/stitch (`stitchRunReport`) completed with
 * what the wiring knows (time taken, key logs, the AEAD opener), printed as lines or JSON on stdout.
 */
import { describeOutputReport } from "@cloudtap/egress";
import type { BlobProblem } from "@cloudtap/fetch";
import {
  formatStitchRunReport,
  type KeyLogCounters,
  type StitchRunInput,
  stitchRunReport,
  type Variant,
} from "@cloudtap/stitch";
import { nativeAead } from "@cloudtap/tls";
import type { CommandIo } from "./command.js";
import { formatBytes, toJson } from "./units.js";

export interface StitchSummaryContext {
  readonly io: CommandIo;
  readonly json: boolean;
  /** process.hrtime.bigint() at the start of the run. */
  readonly started: bigint;
  readonly keys: KeyLogCounters;
  readonly keyLogProblems: readonly BlobProblem[];
  readonly variant: Variant;
}

export type StitchRunCounters = Omit<
  StitchRunInput,
  "keys" | "keyLogProblems" | "variant" | "aeadOpener" | "seconds"
>;

/** Prints the run's report; returns the exit status (0: the run completed, its problems are reported). */
export function writeStitchSummary(context: StitchSummaryContext, run: StitchRunCounters): number {
  const native = nativeAead();
  const report = stitchRunReport({
    ...run,
    seconds: Number(process.hrtime.bigint() - context.started) / 1e9,
    keys: context.keys,
    keyLogProblems: context.keyLogProblems,
    variant: context.variant,
    aeadOpener: native.binding ? "native" : `node:crypto (native opener ${native.reason})`,
  });
  const text = context.json
    ? toJson(report)
    : formatStitchRunReport(report, { describeOutput: describeOutputReport, formatBytes }).join("\n");
  context.io.stdout.write(`${text}\n`);
  return 0;
}
