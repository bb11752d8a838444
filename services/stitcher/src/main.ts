/**
 * The stitcher service: wiring only. Config, logger, NATS, the key broker and mirror-egress clients (mutual
 * TLS), the stitch stage over this instance's shards, the status server, and shutdown in order (status
 * server, the stage's consumers, its mirror streams, then NATS).
 */
// First: the OpenTelemetry SDK starts before any other module is evaluated.
import "@cloudtap/telemetry/register";
import { connectBus, consumerPending, ensureKv, putJson, StreamName, stitcherConsumer } from "@cloudtap/bus";
import {
  DEFAULT_SHARD_LEASE_TTL_MS,
  followReplays,
  grpcKeyLookup,
  grpcMirrorLink,
  type ReplayRecord,
  replayShardKey,
  replayShardsDone,
  reportBusEvents,
  runCounters,
  runShardLeases,
  SHARD_LEASE_BUCKET,
  settleReplay,
  startCpuProfileFromEnv,
  startStitchStage,
  statusHandlers,
} from "@cloudtap/mesh";
import { KeyService, MirrorService, StatusService } from "@cloudtap/proto";
import {
  clientCredentials,
  createClient,
  createRpcServer,
  expectServerIdentity,
  registerService,
  ServiceIdentity,
  serverCredentials,
} from "@cloudtap/rpc";
import {
  bootService,
  formatHostPort,
  ListenRole,
  parseHostPort,
  recordListening,
} from "@cloudtap/service-kit";
import { Attr, startServiceTelemetry } from "@cloudtap/telemetry";
import { credentials, ServerCredentials } from "@grpc/grpc-js";
import { loadStitcherConfig, SERVICE } from "./config.js";

// Profiling runs only: STITCHER_CPU_PROF_DIR set, a .cpuprofile of this process at its exit.
startCpuProfileFromEnv("STITCHER_CPU_PROF_DIR", SERVICE);

const { config, instance, log, shutdown, counters } = bootService(
  SERVICE,
  () => loadStitcherConfig(),
  (loaded) => loaded.values.instance,
);
const c = config.values;
const telemetry = await startServiceTelemetry({
  service: SERVICE,
  instance,
  read: () => counters.series?.() ?? [],
  attributes: { [Attr.Variant]: c.variant },
  metricsListen: c.metricsListen,
  shutdown,
  log,
});
recordListening(ListenRole.Metrics, telemetry.metricsPort);
// Elastic (STITCHER_SHARDS=auto): the shards come by lease (shard-leases.ts); the replays keep every shard.
const elastic = c.shards === "auto";
const range = c.shards === "auto" ? undefined : c.shards;
const first = range?.first ?? 0;
const last = range?.last ?? c.shardCount - 1;
if (last >= c.shardCount) {
  log.error("invalid configuration", { error: `STITCHER_SHARDS ends at ${last}, past STITCHER_SHARD_COUNT` });
  process.exit(2);
}
const shards = Array.from({ length: last - first + 1 }, (_, i) => first + i);

const peerCredentials = c.tlsDir
  ? await clientCredentials(c.tlsDir, ServiceIdentity.Stitcher)
  : credentials.createInsecure();
const peer = (identity: string) =>
  c.tlsDir
    ? { credentials: peerCredentials, channelOptions: expectServerIdentity(identity) }
    : { credentials: peerCredentials };
const mirrorClient = createClient(
  MirrorService,
  formatHostPort(c.mirrorEgressAddr),
  peer(ServiceIdentity.MirrorEgress),
);
const keyClient = c.keyBrokerAddr
  ? createClient(KeyService, formatHostPort(c.keyBrokerAddr), peer(ServiceIdentity.KeyBroker))
  : undefined;

const bus = await connectBus({
  servers: c.natsUrl.split(",").map((s) => s.trim()),
  name: `${SERVICE}-${instance}`,
  signal: shutdown.signal,
  onEvent: reportBusEvents(log, counters),
});
shutdown.onShutdown("nats", () => bus.close());

let stage: Awaited<ReturnType<typeof startStitchStage>> | undefined;
const state = () => {
  if (!stage) return "starting";
  const shardStates = stage.status();
  return shardStates.length > 0 && shardStates.every((s) => s.done) ? "done" : "running";
};
if (c.statusListen) {
  const server = await createRpcServer({
    address: formatHostPort(c.statusListen),
    credentials: c.tlsDir
      ? await serverCredentials(c.tlsDir, ServiceIdentity.Stitcher)
      : ServerCredentials.createInsecure(),
    services: [
      registerService(
        StatusService,
        statusHandlers({
          service: SERVICE,
          instance,
          counters,
          state,
          labels: () => ({
            run: c.run,
            shards: elastic ? `auto: ${stage?.running().join(",") ?? ""}` : `${first}-${last}`,
            variant: c.variant,
          }),
        }),
      ),
    ],
    onError: (err) => log.warn("rpc error", { error: err }),
  });
  recordListening(ListenRole.Rpc, server.port);
  log.info("status server listening", { port: server.port });
  shutdown.onShutdown("status server", () => server.shutdown(5000).then(() => {}));
}

stage = await startStitchStage({
  bus,
  run: c.run,
  shards: elastic ? [] : shards,
  elastic,
  settings: { mtu: c.mtu, filter: c.filter },
  pullBytes: c.pullBytes,
  pullShards: elastic ? c.shardCount : shards.length,
  variant: c.variant,
  cleartextPorts: c.cleartextPorts,
  mirror: (shard) => grpcMirrorLink({ client: mirrorClient, stitcherId: `${instance}/${shard}`, mtu: c.mtu }),
  ...(keyClient ? { keys: grpcKeyLookup(keyClient) } : {}),
  keyWaitMs: c.keyWaitMs,
  flowTraceRatio: c.flowTraceRatio,
  ackWaitMs: c.ackWaitMs,
  ...(c.idleAfterMs === undefined ? {} : { idleAfterMs: c.idleAfterMs }),
  advanceWhenIdle: c.advanceWhenIdle ?? c.idleAfterMs !== undefined,
  latenessNs: BigInt(c.latenessMs) * 1_000_000n,
  counters,
  log,
  signal: shutdown.signal,
});
shutdown.onShutdown("stitch stage", () => stage?.finished.catch(() => {}));
if (elastic) {
  const live = stage;
  const kv = await ensureKv(bus.js, SHARD_LEASE_BUCKET, { ttlMs: DEFAULT_SHARD_LEASE_TTL_MS });
  const leases = runShardLeases({
    kv,
    instance,
    shardCount: c.shardCount,
    hooks: { start: (shard) => live.startShard(shard), stop: (shard) => live.stopShard(shard) },
    log,
    counters,
    signal: shutdown.signal,
  });
  shutdown.onShutdown("shard leases", () => leases.finished);
}
// JetStream's backlog per shard consumer (what KEDA scales stitchers on), for the metrics and the status.
const pendingTimer = setInterval(() => {
  for (const shard of elastic ? stage.running() : shards) {
    const consumer = stitcherConsumer(c.run, shard);
    consumerPending(bus.jsm, StreamName.Chunks, consumer).then(
      (p) => {
        counters.gauge("jetstream_pending", { consumer }).set(p.pending);
        counters.gauge("jetstream_ack_pending", { consumer }).set(p.ackPending);
      },
      () => {},
    );
  }
}, 5000);
pendingTimer.unref();
shutdown.onShutdown("pending gauges", () => clearInterval(pendingTimer));

stage.finished.then(
  () => log.info("every shard done", { shards: shards.length }),
  (err: unknown) => {
    log.error("stitch stage failed", { error: err });
    void shutdown.shutdown("stitch stage failed", 1);
  },
);

// Replays (docs/mesh.md): this stitcher's shards of each replay, streamed to the replay's mirror-egress.
const replays = followReplays({
  bus,
  log,
  signal: shutdown.signal,
  run: async (record: ReplayRecord, kv, signal) => {
    if (elastic) {
      // Not yet: a replay's shards are split by the fixed ranges; elastic stitchers would each take all.
      log.warn("replay not taken: this stitcher's shards are elastic (STITCHER_SHARDS=auto)", {
        run: record.runId,
      });
      return;
    }
    const done = new Set(await replayShardsDone(kv, record.runId));
    const mine = shards.filter((s) => !done.has(s) && s < record.shardCount);
    if (mine.length === 0) return;
    log.info("replay: stitching its shards", {
      run: record.runId,
      shards: mine,
      egress: record.mirrorEgressAddr,
    });
    const client = createClient(
      MirrorService,
      formatHostPort(parseHostPort(record.mirrorEgressAddr)),
      peer(ServiceIdentity.MirrorEgress),
    );
    try {
      const replayStage = await startStitchStage({
        bus,
        run: record.runId,
        shards: mine,
        settings: { mtu: c.mtu, filter: record.flowRules.length > 0 ? [...record.flowRules] : c.filter },
        // Beside the live run's pulls on the same connection: half as much again, under nats-server's limit.
        pullBytes: Math.floor(c.pullBytes / 2),
        variant: c.variant,
        cleartextPorts: c.cleartextPorts,
        mirror: (shard) =>
          grpcMirrorLink({ client, stitcherId: `${instance}/${record.runId}/${shard}`, mtu: c.mtu }),
        ...(keyClient ? { keys: grpcKeyLookup(keyClient) } : {}),
        keyWaitMs: c.keyWaitMs,
        flowTraceRatio: c.flowTraceRatio,
        ackWaitMs: c.ackWaitMs,
        counters: runCounters(counters, record.runId),
        log: log.child({ run: record.runId }),
        signal,
        onShardDone: async (shard) => {
          await putJson(kv, replayShardKey(record.runId, shard), { instance });
          await settleReplay(kv, record);
        },
      });
      await replayStage.finished;
      log.info("replay: shards done", { run: record.runId, shards: mine });
    } finally {
      client.close();
    }
  },
});
shutdown.onShutdown("replays", () => replays.catch(() => {}));
