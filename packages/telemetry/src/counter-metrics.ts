/**
 * A service's counters as OpenTelemetry metrics: one observable instrument per declared metric (`METRICS`
 * of the registry), each reading its series from the same source the status RPC reads, at collection time.
 * Nothing is counted twice and nothing drifts: `cloudtap status` and Prometheus show the same numbers.
 */
import type { Attributes, Meter, ObservableResult } from "@opentelemetry/api";
import { LABEL_ATTRIBUTES, METRICS, type MetricDeclaration, MetricKind } from "./registry.js";
import { meter as defaultMeter } from "./tracing.js";

/** One series as `CounterRegistry.series()` of @cloudtap/service-kit gives it. */
export interface SeriesValue {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface BindCountersOptions {
  /** Attributes on every point (e.g. the run); default none. */
  readonly attributes?: Attributes;
  /** Default: the registry's `METRICS`. */
  readonly metrics?: readonly MetricDeclaration[];
  /** Default: the global meter of @cloudtap/telemetry. */
  readonly meter?: Meter;
}

/** The attributes of a series: its labels by the registry's names, then the source's own attributes. */
export function attributesOf(labels: Readonly<Record<string, string>>): Attributes {
  const out: Attributes = {};
  for (const [k, v] of Object.entries(labels)) out[LABEL_ATTRIBUTES[k] ?? `cloudtap.${k}`] = v;
  return out;
}

/**
 * Registers observable instruments over `read()`. Only the declared metrics whose series `read()` ever
 * returns are observed (a service reports its own). Returns a function that unregisters them.
 */
export function bindCounterMetrics(read: () => Iterable<SeriesValue>, options: BindCountersOptions = {}) {
  const m = options.meter ?? defaultMeter();
  const common = options.attributes ?? {};
  const declared = options.metrics ?? METRICS;
  const unbind: (() => void)[] = [];
  for (const metric of declared) {
    const sources = new Map(metric.from.map((s) => [s.series, s]));
    const instrument =
      metric.kind === MetricKind.Counter
        ? m.createObservableCounter(metric.name, { unit: metric.unit, description: metric.description })
        : m.createObservableGauge(metric.name, { unit: metric.unit, description: metric.description });
    const callback = (result: ObservableResult) => {
      for (const s of read()) {
        const source = sources.get(s.name);
        if (!source) continue;
        result.observe(s.value * (source.scale ?? 1), {
          ...common,
          ...attributesOf(s.labels),
          ...source.attributes,
        });
      }
    };
    instrument.addCallback(callback);
    unbind.push(() => instrument.removeCallback(callback));
  }
  return () => {
    for (const u of unbind) u();
  };
}

/** A plain record of numbers (`{ lookups: 3, waiters: 0 }`) as series without labels. */
export function seriesOfRecord(record: Readonly<Record<string, number>>): SeriesValue[] {
  return Object.entries(record).map(([name, value]) => ({ name, labels: {}, value }));
}
