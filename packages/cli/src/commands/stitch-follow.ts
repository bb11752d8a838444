/**
 * `cloudtap stitch --follow`: the wiring of @cloudtap/stitch's `runFollowJob` (the follow loop, its
 * checkpoints and the resume rule live there): outputs opened from the egress spec with the capture files
 * resumed where the state says they were made durable, the state file, key logs as they land, the summary.
 */
import type { EgressSpec } from "@cloudtap/egress";
import { isEgressError } from "@cloudtap/egress";
import { openEgress } from "@cloudtap/egress/node";
import { DEFAULT_LOOKBACK_NS, readKeyLogs } from "@cloudtap/fetch";
import type { ObjectStore } from "@cloudtap/object-store";
import {
  addKeyLogs,
  createStitcherFromSettings,
  FOLLOW_STATE_VERSION,
  type FollowState,
  flowTableCountersOf,
  runFollowJob,
  type StitcherSettings,
  stitcherCountersOf,
} from "@cloudtap/stitch";
import { parseBlobKey } from "@cloudtap/tap-format";
import type { KeyStore } from "@cloudtap/tls";
import type { CommandIo } from "../command.js";
import { createProgressLine } from "../progress.js";
import { loadStateFile, StateFileError, saveStateFile } from "../state-file.js";
import { type StitchSummaryContext, writeStitchSummary } from "../stitch-summary.js";
import { UsageError } from "../usage-error.js";

export interface FollowRun {
  readonly io: CommandIo;
  readonly store: ObjectStore;
  readonly keyStore: ObjectStore;
  readonly prefix: string;
  readonly sinceNs?: bigint;
  readonly pollMs: number;
  readonly latenessNs: bigint;
  readonly statePath?: string;
  readonly spec: EgressSpec;
  readonly settings: StitcherSettings;
  readonly tlsKeys: KeyStore;
  readonly onCorruption: "resync" | "skip-rest";
  readonly quiet: boolean;
  readonly summary: Omit<StitchSummaryContext, "keys" | "keyLogProblems">;
}

interface FilePosition {
  readonly path: string;
  readonly bytes: number;
}

function checkState(path: string, value: unknown): FollowState | undefined {
  if (value === undefined) return undefined;
  const s = value as Partial<FollowState>;
  if (s.version !== FOLLOW_STATE_VERSION || !Array.isArray(s.replay) || !Array.isArray(s.seen))
    throw new StateFileError(`--state ${path}: not a cloudtap stitch --follow state (version 1)`);
  return s as FollowState;
}

export async function runFollow(f: FollowRun): Promise<number> {
  const state = f.statePath === undefined ? undefined : checkState(f.statePath, loadStateFile(f.statePath));
  const positions = ((state?.outputs as { files?: FilePosition[] } | undefined)?.files ?? []).filter(
    (p) => typeof p.path === "string" && Number.isSafeInteger(p.bytes),
  );
  const spec: EgressSpec = {
    ...f.spec,
    files: (f.spec.files ?? []).map((file) => {
      const at = positions.find((p) => p.path === file.path);
      // With a state file, a file the state does not name starts over (a leftover of a run that never
      // checkpointed is replaced).
      if (at) return { ...file, resumeAt: at.bytes };
      return f.statePath === undefined ? file : { ...file, resumeAt: 0 };
    }),
  };
  // Keys of the connections a resumed run reads again, and of what comes next, then the key logs as they land.
  const replayStart = state?.replay[0] ? parseBlobKey(state.replay[0].key)?.startNs : undefined;
  const cursor = state?.cursorNs === undefined ? undefined : BigInt(state.cursorNs);
  const keysFrom = replayStart ?? (cursor === undefined ? f.sinceNs : cursor - f.latenessNs);
  const initial = await readKeyLogs(f.keyStore, {
    prefix: f.prefix,
    ...(keysFrom === undefined ? {} : { sinceNs: keysFrom - DEFAULT_LOOKBACK_NS }),
    signal: f.io.signal,
  });
  const added = addKeyLogs(f.tlsKeys, initial.keyLogs);
  const keys = {
    objects: added.counters.objects,
    lines: added.counters.lines,
    malformed: added.counters.malformed,
    conflicts: added.counters.conflicts ?? 0,
  };
  const keyLogProblems = [...initial.problems, ...added.problems];
  const decoder = new TextDecoder();

  const opened = await openEgress(spec, { signal: f.io.signal }).catch((err: unknown) => {
    throw isEgressError(err) ? new UsageError(err.message) : err;
  });
  const { egress, encapsulationBytes } = opened;
  const progress = createProgressLine(f.io.stderr, { unit: "blobs", quiet: f.quiet });
  let report: Awaited<ReturnType<typeof runFollowJob>>;
  try {
    report = await runFollowJob({
      store: f.store,
      keyStore: f.keyStore,
      prefix: f.prefix,
      pollMs: f.pollMs,
      latenessNs: f.latenessNs,
      ...(f.sinceNs === undefined ? {} : { sinceNs: f.sinceNs }),
      ...(state ? { state } : {}),
      createStitcher: (sink, embedKeys) =>
        createStitcherFromSettings(
          { ...f.settings, encapsulationBytes },
          { sink, keys: f.tlsKeys, embedKeys },
        ),
      sink: egress,
      embedKeys: (text) => egress.embedKeys(text),
      output: egress,
      write: egress,
      syncOutputs: async () => {
        const files: FilePosition[] = [];
        for (const o of egress.outputs) {
          const file = o as typeof o & { path?: string; sync?: () => Promise<number> };
          if (typeof file.sync === "function" && file.path !== undefined)
            files.push({ path: file.path, bytes: await file.sync() });
        }
        return { files };
      },
      saveState: (s) => (f.statePath === undefined ? Promise.resolve() : saveStateFile(f.statePath, s)),
      onCorruption: f.onCorruption,
      onKeyLog: (key, text) => {
        const more = addKeyLogs(f.tlsKeys, [{ key, text: decoder.decode(text) }]);
        keys.objects += more.counters.objects;
        keys.lines += more.counters.lines;
        keys.malformed += more.counters.malformed;
        keys.conflicts += more.counters.conflicts ?? 0;
        keyLogProblems.push(...more.problems);
      },
      onProgress: (p) => progress.update({ items: p.blobs, bytes: p.blobBytes }),
      signal: f.io.signal,
    });
    progress.done();
    await opened.close();
  } catch (err) {
    progress.done();
    // With a state, what was written stays: the next run resumes it (the state says how much is sound).
    await (f.statePath === undefined ? opened.abort() : opened.close().catch(() => {}));
    throw err;
  }
  const reports = egress.report().outputs;
  return writeStitchSummary(
    { ...f.summary, keys, keyLogProblems },
    {
      output: reports.map((o) => o.name).join(", "),
      outputs: reports,
      encapsulationBytes,
      workers: 1,
      job: report.job,
      stitcher: stitcherCountersOf(report.stitcher),
      table: flowTableCountersOf(report.stitcher),
    },
  );
}
