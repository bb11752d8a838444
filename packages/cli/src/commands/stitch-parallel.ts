/**
 * `cloudtap stitch --workers N` into one capture file: the wiring of @cloudtap/stitch-workers'
 * `runParallelStitch` (the shards, the rounds and the merge by time live there): the file opened from the
 * egress spec with its header written, the workers' progress, the summary. Any failure removes the file.
 */
import type { CaptureFileSpec, EgressSpec } from "@cloudtap/egress";
import { captureFileOutput } from "@cloudtap/egress/node";
import type { BlobSource } from "@cloudtap/fetch";
import type { StitcherSettings } from "@cloudtap/stitch";
import { runParallelStitch } from "@cloudtap/stitch-workers";
import type { ProgressLine } from "../progress.js";
import { type StitchSummaryContext, writeStitchSummary } from "../stitch-summary.js";

export interface ParallelRun {
  readonly workers: number;
  readonly blobs: readonly BlobSource[];
  readonly keyLogs: readonly string[];
  readonly file: CaptureFileSpec;
  readonly spec: EgressSpec;
  readonly settings: StitcherSettings;
  readonly progress: ProgressLine;
  readonly summary: StitchSummaryContext;
  readonly signal: AbortSignal;
}

export async function runParallel(run: ParallelRun): Promise<number> {
  const { file, progress } = run;
  const output = captureFileOutput(file, run.spec) as ReturnType<typeof captureFileOutput> &
    Parameters<typeof runParallelStitch>[0]["output"];
  let job: Awaited<ReturnType<typeof runParallelStitch>>;
  try {
    for (const c of output.flush()) await output.write(c); // the file header
    job = await runParallelStitch({
      workers: run.workers,
      blobs: run.blobs,
      keyLogs: run.keyLogs,
      output,
      signal: run.signal,
      settings: {
        ...run.settings,
        format: file.format,
        ...(file.format === "pcap" ? { resolution: "nanosecond" as const } : {}),
      },
      ...(progress.active
        ? { onProgress: (p) => progress.update({ items: p.blobs, bytes: p.blobBytes }) }
        : {}),
    });
    await output.close();
  } catch (err) {
    await output.abort();
    throw err;
  } finally {
    progress.done();
  }
  return writeStitchSummary(run.summary, {
    output: file.path,
    outputs: [output.report()],
    encapsulationBytes: 0,
    workers: job.workers,
    job,
    stitcher: job.stitcher,
    table: job.table,
  });
}
