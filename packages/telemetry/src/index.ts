export type { BindCountersOptions, SeriesValue } from "./counter-metrics.js";
export { attributesOf, bindCounterMetrics, seriesOfRecord } from "./counter-metrics.js";
export type { HeaderCarrier, MetadataCarrier } from "./propagation.js";
export {
  contextFromRecord,
  extractHeaders,
  extractMetadata,
  injectHeaders,
  injectMetadata,
  spanContextOf,
  traceContextRecord,
} from "./propagation.js";
export type { AttrName, MetricDeclaration, MetricSource } from "./registry.js";
export {
  Attr,
  LABEL_ATTRIBUTES,
  METRICS,
  MetricKind,
  metricOfSeries,
  prometheusName,
  SpanName,
} from "./registry.js";
export type { ServiceTelemetry, ServiceTelemetryOptions } from "./service-telemetry.js";
export { startServiceTelemetry } from "./service-telemetry.js";
export type { Attributes, Context, Link, Span, SpanContext, SpanOptions } from "./tracing.js";
export {
  contextOf,
  errorType,
  INSTRUMENTATION_SCOPE,
  isRecording,
  linkTo,
  markError,
  meter,
  recordError,
  SpanKind,
  startSpan,
  tracer,
  withContext,
  withSpan,
} from "./tracing.js";
