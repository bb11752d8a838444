/**
 * A service main's telemetry wiring in one call, right after its boot: the SDK's flush registered as the
 * last shutdown step (registered first, so it runs after every other step), its counters bound to the
 * declared metrics, and the Prometheus endpoint on `<SERVICE>_METRICS_LISTEN` when one is set.
 */
import type { Attributes } from "@opentelemetry/api";
import { bindCounterMetrics, type SeriesValue } from "./counter-metrics.js";
import { serveMetrics } from "./metrics-server.js";
import { activeTelemetry, shutdownTelemetry, startTelemetry } from "./sdk.js";

export interface ServiceTelemetryOptions {
  readonly service: string;
  readonly instance: string;
  /** The service's counter series (the status RPC's source too). */
  readonly read: () => Iterable<SeriesValue>;
  readonly attributes?: Attributes;
  readonly metricsListen?: { readonly host: string; readonly port: number } | undefined;
  /** The service's shutdown (`Shutdown` of @cloudtap/service-kit). */
  readonly shutdown: { onShutdown(name: string, step: () => Promise<void> | void): void };
  readonly log: { info(msg: string, fields?: Readonly<Record<string, unknown>>): void };
}

/** What it started: the Prometheus endpoint's bound port, when one listens (the port asked may be 0). */
export interface ServiceTelemetry {
  readonly metricsPort?: number;
}

export async function startServiceTelemetry(options: ServiceTelemetryOptions): Promise<ServiceTelemetry> {
  const telemetry =
    activeTelemetry() ?? startTelemetry({ serviceName: options.service, serviceInstance: options.instance });
  options.shutdown.onShutdown("telemetry", () => shutdownTelemetry());
  bindCounterMetrics(options.read, options.attributes ? { attributes: options.attributes } : {});
  let metricsPort: number | undefined;
  if (options.metricsListen) {
    const server = await serveMetrics(options.metricsListen, options.service);
    options.shutdown.onShutdown("metrics server", () => server.close());
    options.log.info("metrics endpoint listening", { port: server.port, path: "/metrics" });
    metricsPort = server.port;
  }
  options.log.info("telemetry", { serviceName: telemetry.serviceName, otlp: telemetry.otlp });
  return metricsPort === undefined ? {} : { metricsPort };
}
