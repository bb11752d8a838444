/**
 * The fetcher service: wiring only. Config, logger, NATS, the data store, the fetch stage, the status server,
 * and shutdown in order (status server, then the stage, then NATS).
 */
// First: the OpenTelemetry SDK starts before any other module is evaluated.
import "@cloudtap/telemetry/register";
import { connectBus, consumerPending, fetcherConsumer, StreamName } from "@cloudtap/bus";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import {
  createFetchStage,
  type FetchMode,
  followReplays,
  replayHandlers,
  reportBusEvents,
  runCounters,
  startCpuProfileFromEnv,
} from "@cloudtap/mesh";
import { asStoreCannotOpen, isStoreCannotOpen, openCheckedStore, openStore } from "@cloudtap/object-store";
import { ReplayService, StatusService } from "@cloudtap/proto";
import { createRpcServer, registerService, ServiceIdentity, serverCredentials } from "@cloudtap/rpc";
import {
  bootService,
  formatHostPort,
  ListenRole,
  recordExitReason,
  recordListening,
  ServiceExitCode,
} from "@cloudtap/service-kit";
import { Attr, startServiceTelemetry } from "@cloudtap/telemetry";
import { ServerCredentials } from "@grpc/grpc-js";
import { loadFetcherConfig, SERVICE } from "./config.js";

// Profiling runs only: FETCHER_CPU_PROF_DIR set, a .cpuprofile of this process at its exit.
startCpuProfileFromEnv("FETCHER_CPU_PROF_DIR", SERVICE);

const { config, instance, log, shutdown, counters } = bootService(
  SERVICE,
  () => loadFetcherConfig(),
  (loaded) => loaded.values.instance,
);
const c = config.values;
const telemetry = await startServiceTelemetry({
  service: SERVICE,
  instance,
  read: () => counters.series?.() ?? [],
  attributes: { [Attr.Run]: c.run },
  metricsListen: c.metricsListen,
  shutdown,
  log,
});
recordListening(ListenRole.Metrics, telemetry.metricsPort);

const bus = await connectBus({
  servers: c.natsUrl.split(",").map((s) => s.trim()),
  name: `${SERVICE}-${instance}`,
  signal: shutdown.signal,
  onEvent: reportBusEvents(log, counters),
});
shutdown.onShutdown("nats", () => bus.close());

const mode: FetchMode = c.once
  ? {
      kind: "once",
      ...(c.sinceNs === undefined ? {} : { sinceNs: c.sinceNs }),
      ...(c.untilNs === undefined ? {} : { untilNs: c.untilNs }),
    }
  : {
      kind: "continuous",
      pollMs: c.pollMs,
      latenessNs: BigInt(c.latenessMs) * 1_000_000n,
      ...(c.sinceNs === undefined ? {} : { sinceNs: c.sinceNs }),
    };
registerCloudStores();
// A store that cannot be opened ends the process with its own exit code and reason (not a restart loop).
const store = await openCheckedStore(
  c.source,
  () => openStore(c.source, { credentialsFile: c.sourceCredentials, readOnly: true }),
  c.prefix,
).catch(async (err: unknown) => {
  if (!isStoreCannotOpen(err)) throw err;
  log.error("data store cannot be opened", { store: c.source, error: err });
  recordExitReason(err.message);
  await shutdown.shutdown("data store cannot be opened", ServiceExitCode.StoreCannotOpen);
  throw err;
});
const stage = createFetchStage({
  bus,
  store,
  ...(c.prefix === "" ? {} : { prefix: c.prefix }),
  run: c.run,
  shardCount: c.shards,
  mode,
  counters,
  logger: log,
  signal: shutdown.signal,
  ackWaitMs: c.ackWaitMs,
  ...(c.chunksMaxBytes === undefined ? {} : { streams: { chunksMaxBytes: c.chunksMaxBytes } }),
});
const running = stage.run();
// JetStream's backlog of the work queue, for the lag metrics and the status alike.
const pendingTimer = setInterval(() => {
  const consumer = fetcherConsumer(c.run);
  consumerPending(bus.jsm, StreamName.Blobs, consumer).then(
    (p) => {
      counters.gauge("jetstream_pending", { consumer }).set(p.pending);
      counters.gauge("jetstream_ack_pending", { consumer }).set(p.ackPending);
    },
    () => {},
  );
}, 5000);
pendingTimer.unref();
shutdown.onShutdown("pending gauges", () => clearInterval(pendingTimer));
shutdown.onShutdown("fetch stage", () => running.catch(() => {}));

// Replays (docs/mesh.md): this fetcher's part of each replay is a one-shot stage over its window and run id.
const replays = followReplays({
  bus,
  log,
  signal: shutdown.signal,
  run: async (record, _kv, signal) => {
    log.info("replay: fetching its window", {
      run: record.runId,
      since: record.sinceNs,
      until: record.untilNs,
    });
    await createFetchStage({
      bus,
      store,
      ...(c.prefix === "" ? {} : { prefix: c.prefix }),
      run: record.runId,
      shardCount: record.shardCount,
      mode: { kind: "once", sinceNs: BigInt(record.sinceNs), untilNs: BigInt(record.untilNs) },
      tapperIds: record.tapperIds,
      counters: runCounters(counters, record.runId),
      logger: log,
      signal,
      ackWaitMs: c.ackWaitMs,
    }).run();
  },
});
shutdown.onShutdown("replays", () => replays.catch(() => {}));

if (c.statusListen) {
  const server = await createRpcServer({
    address: formatHostPort(c.statusListen),
    credentials: c.tlsDir
      ? await serverCredentials(c.tlsDir, ServiceIdentity.Fetcher)
      : ServerCredentials.createInsecure(),
    services: [
      registerService(StatusService, {
        getStatus: () => ({
          service: SERVICE,
          instance,
          pid: process.pid,
          state: stage.state,
          counters: counters.snapshot(),
          labels: { run: c.run, shards: String(c.shards), mode: mode.kind },
        }),
      }),
      registerService(ReplayService, replayHandlers({ bus, shardCount: c.shards, log }), {
        ...(c.tlsDir ? { allowedIdentities: [ServiceIdentity.Cli] } : {}),
      }),
    ],
    onError: (err) => log.warn("rpc error", { error: err }),
  });
  recordListening(ListenRole.Rpc, server.port);
  log.info("status server listening", { port: server.port });
  shutdown.onShutdown("status server", () => server.shutdown(5000).then(() => {}));
}

running.catch((err: unknown) => {
  log.error("fetch stage failed", { error: err });
  const cannotOpen = asStoreCannotOpen(c.source, err);
  if (cannotOpen) recordExitReason(cannotOpen.message);
  void shutdown.shutdown(
    "fetch stage failed",
    cannotOpen ? ServiceExitCode.StoreCannotOpen : ServiceExitCode.Failed,
  );
});
