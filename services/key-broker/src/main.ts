/**
 * The key-broker service: wiring only. Config, logger, NATS, the sealed vault and the cursor, the key-log
 * watcher feeding the broker, and the RPC server (KeyService for the stitcher identity only; StatusService
 * for the stitcher and the CLI; health for any mesh certificate), all with mutual TLS. Shutdown in reverse:
 * RPC server first (graceful, then forced), then the watcher, then NATS.
 */
// First: the OpenTelemetry SDK starts before any other module is evaluated.
import "@cloudtap/telemetry/register";
import { connectBus } from "@cloudtap/bus";
import { registerCloudStores } from "@cloudtap/cloud-stores";
import {
  createKeyBroker,
  createKeyLogWatcher,
  keyServiceHandlers,
  openKvCursorStore,
  openNatsVault,
} from "@cloudtap/key-vault";
import { isStoreCannotOpen, openCheckedStore, openStore } from "@cloudtap/object-store";
import { KeyService, StatusService } from "@cloudtap/proto";
import {
  createRpcServer,
  registerService,
  type ServiceHandlers,
  ServiceIdentity,
  serverCredentials,
} from "@cloudtap/rpc";
import {
  bootService,
  formatHostPort,
  ListenRole,
  recordExitReason,
  recordListening,
  ServiceExitCode,
} from "@cloudtap/service-kit";
import {
  Attr,
  extractMetadata,
  SpanKind,
  SpanName,
  seriesOfRecord,
  startServiceTelemetry,
  withSpan,
} from "@cloudtap/telemetry";
import { loadKeyBrokerConfig, SERVICE } from "./config.js";

const { config, instance, log, shutdown } = bootService(
  SERVICE,
  () => loadKeyBrokerConfig(),
  (loaded) => loaded.values.instance,
);
const c = config.values;
registerCloudStores();
let state = "starting";
/** The broker's and watcher's counters: what GetStatus returns and the metrics read (set once both exist). */
let brokerCounters: () => Record<string, number> = () => ({});
const telemetry = await startServiceTelemetry({
  service: SERVICE,
  instance,
  read: () => seriesOfRecord(brokerCounters()),
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
  onEvent: (event) =>
    log.info("nats", { event: event.type, ...("server" in event ? { server: event.server } : {}) }),
});
shutdown.onShutdown("nats", () => bus.close());

const vault = await openNatsVault(bus, { key: c.vaultKey, ttlMs: c.ttlMs });
const broker = createKeyBroker({ vault, maxWaiters: c.maxWaiters });
// A key store that cannot be opened ends the process with its own exit code and reason (no restart loop).
const keysStore = await openCheckedStore(
  c.keysStore,
  () => openStore(c.keysStore, { credentialsFile: c.keysStoreCredentials, readOnly: true }),
  c.prefix,
).catch(async (err: unknown) => {
  if (!isStoreCannotOpen(err)) throw err;
  log.error("key store cannot be opened", { store: c.keysStore, error: err });
  recordExitReason(`key ${err.message}`);
  await shutdown.shutdown("key store cannot be opened", ServiceExitCode.StoreCannotOpen);
  throw err;
});
const watcher = createKeyLogWatcher({
  store: keysStore,
  ...(c.prefix === "" ? {} : { prefix: c.prefix }),
  cursor: await openKvCursorStore(bus.js, c.run),
  latenessNs: BigInt(c.latenessMs) * 1_000_000n,
  async onKeyLog(key, text) {
    // Only names and counts are logged: the text is key material.
    const r = await broker.ingest(text);
    log.info("key log read", {
      keyLog: key,
      clientRandoms: r.clientRandoms,
      added: r.added,
      conflicts: r.conflicts,
      candidatesDropped: r.candidatesDropped,
      skippedLines: r.skippedLineCount,
    });
  },
  onProblem: (key, err) => log.warn("key log not read", { keyLog: key, error: err }),
});
const watching = watcher.run(c.pollMs, shutdown.signal);
brokerCounters = () => ({ ...counterNames("", broker.stats), ...counterNames("watcher_", watcher.stats) });
shutdown.onShutdown("key-log watcher", () => watching);

const server = await createRpcServer({
  address: formatHostPort(c.listen),
  credentials: await serverCredentials(c.tlsDir, ServiceIdentity.KeyBroker),
  services: [
    registerService(KeyService, tracedKeyHandlers(keyServiceHandlers(broker)), {
      allowedIdentities: [ServiceIdentity.Stitcher],
    }),
    registerService(
      StatusService,
      {
        getStatus: () => ({
          service: SERVICE,
          instance,
          pid: process.pid,
          state,
          counters: brokerCounters(),
          labels: { run: c.run, ...(watcher.cursor ? { cursor: watcher.cursor } : {}) },
        }),
      },
      { allowedIdentities: [ServiceIdentity.Stitcher, ServiceIdentity.Cli] },
    ),
  ],
  onError: (err, context) => log.warn("rpc error", { method: context.method.name, error: err }),
});
shutdown.onShutdown("rpc server", async () => {
  state = "stopping";
  const { forced } = await server.shutdown(5000);
  if (forced) log.warn("rpc calls still in flight at the shutdown deadline were cancelled");
});
state = "serving";
recordListening(ListenRole.Rpc, server.port);
log.info("listening", { port: server.port });

/** Status counter names in the mesh's snake_case (`keyLogsIngested` -> `key_logs_ingested`). */
function counterNames(prefix: string, stats: Readonly<object>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(stats).map(([k, v]) => [
      `${prefix}${k.replace(/[A-Z]/g, (u) => `_${u.toLowerCase()}`)}`,
      v,
    ]),
  );
}

/** The key service's calls as server spans, children of the stitcher's lookup span (counts only, no keys). */
function tracedKeyHandlers(handlers: ServiceHandlers<typeof KeyService>): ServiceHandlers<typeof KeyService> {
  return {
    lookupKeys: (request, context) =>
      withSpan(
        SpanName.KeyBrokerLookup,
        {
          parent: extractMetadata(context.metadata),
          kind: SpanKind.SERVER,
          attributes: { [Attr.KeysWanted]: request.clientRandoms.length },
        },
        async (span) => {
          const r = await handlers.lookupKeys(request, context);
          span.setAttribute(Attr.KeysFound, r.entries?.length ?? 0);
          return r;
        },
      ),
    waitForKeys: (request, context) =>
      withSpan(
        SpanName.KeyWait,
        {
          parent: extractMetadata(context.metadata),
          kind: SpanKind.SERVER,
          attributes: {
            [Attr.KeysWanted]: request.clientRandoms.length,
            [Attr.KeysWaitMs]: request.timeoutMs,
          },
        },
        async (span) => {
          const r = await handlers.waitForKeys(request, context);
          span.setAttributes({
            [Attr.KeysFound]: r.entries?.length ?? 0,
            [Attr.KeysMissing]: r.missing?.length ?? 0,
          });
          return r;
        },
      ),
  };
}
