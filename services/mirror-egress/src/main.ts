/**
 * The mirror-egress service: wiring only. Config, logger, the outputs (`openEgress`), the MirrorService for
 * stitchers, status and health, and shutdown in order: stop accepting streams (those in flight finish), then
 * flush and close every sink (files complete and renamed, datagrams sent).
 */
// First: the OpenTelemetry SDK starts before any other module is evaluated.
import "@cloudtap/telemetry/register";
import { sinkCountersOf } from "@cloudtap/egress";
import { openEgress } from "@cloudtap/egress/node";
import {
  EgressJournal,
  FlowDedup,
  mirrorEndpoint,
  startCpuProfileFromEnv,
  statusHandlers,
} from "@cloudtap/mesh";
import { openStore } from "@cloudtap/object-store";
import { MirrorService, StatusService } from "@cloudtap/proto";
import { createRpcServer, registerService, ServiceIdentity, serverCredentials } from "@cloudtap/rpc";
import { bootService, formatHostPort, ListenRole, recordListening } from "@cloudtap/service-kit";
import { startServiceTelemetry } from "@cloudtap/telemetry";
import { ServerCredentials } from "@grpc/grpc-js";
import { egressSpecOf, loadMirrorEgressConfig, SERVICE } from "./config.js";

// Profiling runs only: MIRROR_EGRESS_CPU_PROF_DIR set, a .cpuprofile of this process at its exit.
startCpuProfileFromEnv("MIRROR_EGRESS_CPU_PROF_DIR", SERVICE);

const { config, instance, log, shutdown, counters } = bootService(
  SERVICE,
  () => loadMirrorEgressConfig(),
  (loaded) => loaded.values.instance,
);
const c = config.values;
const telemetry = await startServiceTelemetry({
  service: SERVICE,
  instance,
  read: () => counters.series?.() ?? [],
  metricsListen: c.metricsListen,
  shutdown,
  log,
});
recordListening(ListenRole.Metrics, telemetry.metricsPort);
// Durable state: the journal says where each capture file resumes and which frames were written.
const durable = c.stateDir ? await EgressJournal.open(c.stateDir) : undefined;
let egress: Awaited<ReturnType<typeof openEgress>>;
try {
  egress = await openEgress(egressSpecOf(c, durable ? durable.loaded.outputs : undefined), {
    openUploadStore: (url) => openStore(url),
  });
} catch (err) {
  // A full or failing disk (ENOSPC on a stalled NDR's file system) is not a configuration error: exit 1, so
  // the supervisor restarts at once as after any failure; exit 2 (a restart will not cure it) backs off up to
  // a minute, and the NDR's return would wait for it.
  const transient = isTransientIoError(err);
  log.error("outputs do not open", { error: err, transient });
  process.exit(transient ? 1 : 2);
}
const dedup = new FlowDedup(egress.egress, { maxEntries: c.dedupMaxEntries });
if (durable) {
  for (const state of durable.loaded.dedup) dedup.load(state);
  log.info("egress journal read", {
    commits: durable.loaded.commits,
    tornLines: durable.loaded.tornLines,
    outputs: durable.loaded.outputs,
    digests: dedup.size,
  });
}
/** The capture outputs that can say how much of them is on disk for good. */
const syncable = egress.egress.outputs.filter(
  (o): o is typeof o & { path: string; sync(): Promise<number> } =>
    typeof (o as { sync?: unknown }).sync === "function" &&
    typeof (o as { path?: unknown }).path === "string",
);
/** Every capture file fsynced, then their lengths and the new frame digests in the journal. */
const commit = async () => {
  const journal = durable!.journal;
  const outputs: Record<string, number> = {};
  for (const o of syncable) outputs[o.path] = await o.sync();
  if (journal.wantsSnapshot) await journal.rewrite({ outputs, dedup: dedup.snapshot() });
  else await journal.commit({ outputs, dedup: dedup.takeDelta() });
  counters.gauge("egress_journal_bytes").set(journal.size);
};
let closed = false;
const mirror = mirrorEndpoint({
  dedup,
  // With a journal, crash-only on a failed sink: nothing unacked is lost, the restart resumes from it.
  ...(durable
    ? {
        onSinkFailure: (err: unknown, sink: string) => {
          log.error("sink failed: exiting to restart from the journal", { sink, error: err });
          process.exit(1);
        },
      }
    : {}),
  ...(durable ? { commit } : {}),
  egress,
  maxInFlight: c.maxInFlight,
  ...(c.mergeMaxBytes === undefined ? {} : { maxHeldBytes: c.mergeMaxBytes }),
  silentAfterMs: c.silentAfterMs,
  counters,
  log,
});
shutdown.onShutdown("sinks", async () => {
  mirror.close();
  await mirror.flush();
  for (const chunk of egress.egress.flush()) await egress.egress.write(chunk);
  if (durable) await commit();
  await egress.close();
  sinkGauges();
  await durable?.journal.close();
  closed = true;
  for (const o of egress.egress.report().outputs) log.info("output closed", { output: o });
});

/** Per sink: packets and bytes written or sent, drops by reason, read from the outputs' own reports. */
function sinkGauges() {
  for (const output of egress.egress.report().outputs) {
    for (const s of sinkCountersOf(output)) {
      const labels = { sink: s.sink, sink_kind: s.sinkKind };
      if (s.packets !== undefined) counters.gauge("egress_sink_packets", labels).set(s.packets);
      if (s.bytes !== undefined) counters.gauge("egress_sink_bytes", labels).set(s.bytes);
      for (const [reason, n] of Object.entries(s.drops))
        counters.gauge("egress_sink_drops", { ...labels, reason }).set(n);
    }
  }
}
sinkGauges();
const sinkTimer = setInterval(sinkGauges, 2000);
sinkTimer.unref();
shutdown.onShutdown("sink gauges", () => clearInterval(sinkTimer));

const server = await createRpcServer({
  address: formatHostPort(c.listen),
  credentials: c.tlsDir
    ? await serverCredentials(c.tlsDir, ServiceIdentity.MirrorEgress)
    : ServerCredentials.createInsecure(),
  services: [
    registerService(MirrorService, mirror.handlers, {
      ...(c.tlsDir ? { allowedIdentities: [ServiceIdentity.Stitcher] } : {}),
    }),
    registerService(
      StatusService,
      statusHandlers({
        service: SERVICE,
        instance,
        counters,
        state: () => (closed ? "closed" : "running"),
        labels: () => ({ outputs: egress.egress.outputs.map((o) => o.name).join(", ") }),
      }),
    ),
  ],
  onError: (err) => log.warn("rpc error", { error: err }),
});
recordListening(ListenRole.Rpc, server.port);
log.info("listening", { port: server.port, outputs: egress.egress.outputs.map((o) => o.name) });
shutdown.onShutdown("server", () => server.shutdown(10_000).then(() => {}));

/** An I/O failure a later attempt may not meet (disk full, quota, device error, too many files open). */
function isTransientIoError(err: unknown): boolean {
  const transient = new Set(["ENOSPC", "EDQUOT", "EIO", "EAGAIN", "EBUSY", "EMFILE", "ENFILE", "ENOMEM"]);
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && transient.has(code)) return true;
  }
  return false;
}
