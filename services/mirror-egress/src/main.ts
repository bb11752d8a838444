/**
 * The mirror-egress service: wiring only. Config, logger, the outputs (`openEgress`), the MirrorService for
 * stitchers, status and health, and shutdown in order: stop accepting streams (those in flight finish), then
 * flush and close every sink (files complete and renamed, datagrams sent).
 */
import { openEgress } from "@cloudtap/egress/node";
import { mirrorEndpoint, statusHandlers } from "@cloudtap/mesh";
import { openStore } from "@cloudtap/object-store";
import { MirrorService, StatusService } from "@cloudtap/proto";
import { createRpcServer, registerService, ServiceIdentity, serverCredentials } from "@cloudtap/rpc";
import { bootService, formatHostPort } from "@cloudtap/service-kit";
import { ServerCredentials } from "@grpc/grpc-js";
import { egressSpecOf, loadMirrorEgressConfig, SERVICE } from "./config.js";

const { config, instance, log, shutdown, counters } = bootService(
  SERVICE,
  () => loadMirrorEgressConfig(),
  (loaded) => loaded.values.instance,
);
const c = config.values;
let egress: Awaited<ReturnType<typeof openEgress>>;
try {
  egress = await openEgress(egressSpecOf(c), { openUploadStore: (url) => openStore(url) });
} catch (err) {
  log.error("outputs do not open", { error: err });
  process.exit(2);
}
let closed = false;
const mirror = mirrorEndpoint({
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
  await egress.close();
  closed = true;
  for (const o of egress.egress.report().outputs) log.info("output closed", { output: o });
});

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
log.info("listening", { port: server.port, outputs: egress.egress.outputs.map((o) => o.name) });
shutdown.onShutdown("server", () => server.shutdown(10_000).then(() => {}));
