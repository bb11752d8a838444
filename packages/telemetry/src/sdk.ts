/**
 * The OpenTelemetry SDK of one service process, configured from the standard environment:
 * - traces go over OTLP/HTTP (JSON) when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set and
 *   `OTEL_TRACES_EXPORTER` is not `none`; sampling follows `OTEL_TRACES_SAMPLER` (default: parent-based,
 *   always on);
 * - metrics go over OTLP/HTTP likewise (every `OTEL_METRIC_EXPORT_INTERVAL` ms, default 15 s), and are
 *   always ready for a Prometheus scrape: `serveMetrics` (metrics-server.ts) opens the endpoint on the
 *   service's `<SERVICE>_METRICS_LISTEN` address once its config is parsed;
 * - the resource: `service.name` from `OTEL_SERVICE_NAME` (else the service's folder name),
 *   `service.namespace` cloudtap, `service.instance.id` from `<SERVICE>_INSTANCE`, `OTEL_RESOURCE_ATTRIBUTES`.
 * - without a span processor (no exporter, none given), no tracer provider is set and the context manager
 *   keeps no active context: spans are the API's no-ops and nothing is carried across awaits, so such a
 *   process does not pass a trace on either (what comes in a message's headers does not reach what it
 *   sends). Give every service the same OTEL settings (`cloudtap up` and the deploy files do).
 * `register.ts` starts it before any application module is evaluated. `shutdownTelemetry()` flushes and
 * stops it: the last step of a service's shutdown.
 */
import { type Context, type ContextManager, ROOT_CONTEXT } from "@opentelemetry/api";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { type IMetricReader, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { NodeSDK } from "@opentelemetry/sdk-node";
import { BatchSpanProcessor, type SpanProcessor } from "@opentelemetry/sdk-trace-base";
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from "@opentelemetry/semantic-conventions";

export interface TelemetryOptions {
  /** Default: `OTEL_SERVICE_NAME`. */
  readonly serviceName: string;
  readonly serviceInstance?: string;
  /** Default `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Extra span processors (tests collect spans in memory). */
  readonly spanProcessors?: readonly SpanProcessor[];
}

export interface Telemetry {
  readonly serviceName: string;
  /** Whether spans and metrics go out over OTLP. */
  readonly otlp: boolean;
  /** The Prometheus reader (its scrape handler serves `/metrics`). */
  readonly prometheus: PrometheusExporter;
  /** Flushes pending spans and metrics, then stops; idempotent. */
  shutdown(): Promise<void>;
}

/** The context manager of a process that records no span: the root context, always. */
class NoActiveContext implements ContextManager {
  active(): Context {
    return ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    _context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return fn.call(thisArg, ...args);
  }
  bind<T>(_context: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    return this;
  }
}

const ACTIVE = Symbol.for("cloudtap.telemetry");
type Holder = { [ACTIVE]?: Telemetry };

/** The process's started telemetry, if any. */
export function activeTelemetry(): Telemetry | undefined {
  return (globalThis as Holder)[ACTIVE];
}

function enabled(env: TelemetryOptions["env"] & object, exporterVar: string, endpointVar: string): boolean {
  const exporters = (env[exporterVar] ?? "otlp").split(",").map((s) => s.trim());
  if (exporters.includes("none")) return false;
  return Boolean(env["OTEL_EXPORTER_OTLP_ENDPOINT"] || env[endpointVar]);
}

/** Starts the SDK once per process (a second call returns the first one's handle). */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const holder = globalThis as Holder;
  const running = holder[ACTIVE];
  if (running) return running;
  const env = options.env ?? process.env;
  const serviceName = env["OTEL_SERVICE_NAME"] || options.serviceName;
  const traces = enabled(env, "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  const otlpMetrics = enabled(env, "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const readers: IMetricReader[] = [prometheus];
  if (otlpMetrics) {
    const interval = Number(env["OTEL_METRIC_EXPORT_INTERVAL"] ?? "");
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter(),
        exportIntervalMillis: Number.isFinite(interval) && interval > 0 ? interval : 15_000,
      }),
    );
  }
  const spanProcessors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  if (traces) spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: serviceName,
      "service.namespace": "cloudtap",
      [ATTR_SERVICE_VERSION]: "0.1.0",
      ...(options.serviceInstance ? { "service.instance.id": options.serviceInstance } : {}),
    }),
    spanProcessors,
    metricReaders: readers,
    // Logs are pino's JSON lines on stderr (with trace ids), not an OTLP signal here.
    logRecordProcessors: [],
    instrumentations: [],
    // A process that records no span keeps no active context: the SDK's default context manager rides on
    // async hooks, a cost on every promise of the hot path (5-8 % of a service's CPU in the mesh bench) for
    // spans nobody records. Explicit contexts (headers in, headers out) still pass through.
    ...(spanProcessors.length === 0 ? { contextManager: new NoActiveContext() } : {}),
  });
  sdk.start();
  let stopped: Promise<void> | undefined;
  const telemetry: Telemetry = {
    serviceName,
    otlp: traces || otlpMetrics,
    prometheus,
    shutdown() {
      stopped ??= sdk.shutdown().finally(() => {
        if (holder[ACTIVE] === telemetry) delete holder[ACTIVE];
      });
      return stopped;
    },
  };
  holder[ACTIVE] = telemetry;
  return telemetry;
}

/** Flushes and stops the process's telemetry (nothing when none was started). */
export async function shutdownTelemetry(): Promise<void> {
  await activeTelemetry()?.shutdown();
}
