/**
 * Named counters and gauges of one service, read by the status RPC as a plain object. A counter only goes
 * up; a gauge is set to the current value (queue depth, lag). Labels make one series per value:
 * `counter("blobs_quarantined", {reason: "bad-magic"})` is shown as `blobs_quarantined{reason=bad-magic}`.
 * Counters are plain numbers: updating one costs a property write, so hot loops may update per record.
 */

export interface Counter {
  add(n?: number): void;
  readonly value: number;
}

export interface Gauge {
  set(value: number): void;
  add(n: number): void;
  readonly value: number;
}

export type CounterLabels = Readonly<Record<string, string>>;

/** One series as its parts, for exporters (OpenTelemetry's observable instruments read these). */
export interface CounterSeries {
  readonly name: string;
  readonly labels: CounterLabels;
  readonly kind: "counter" | "gauge";
  readonly value: number;
}

export interface CounterRegistry {
  counter(name: string, labels?: CounterLabels): Counter;
  gauge(name: string, labels?: CounterLabels): Gauge;
  /** Every series by its full name, counters and gauges alike, in name order. */
  snapshot(): Record<string, number>;
  /**
   * Every series with its name and labels apart, in full-name order: the same values as `snapshot`.
   * `createCounters` registries have it; a view over another registry (one that adds a label) may not.
   */
  series?(): CounterSeries[];
}

class Series implements Counter, Gauge {
  value = 0;
  constructor(private readonly monotonic: boolean) {}
  add(n = 1): void {
    if (this.monotonic && !(n >= 0)) throw new RangeError(`a counter only goes up (add ${n})`);
    this.value += n;
  }
  set(value: number): void {
    this.value = value;
  }
}

const NAME_RE = /^[a-z][a-z0-9_.]*$/;

/** `name{k=v,...}` with labels in key order, so one label set always names one series. */
export function seriesName(name: string, labels?: CounterLabels): string {
  if (!NAME_RE.test(name)) throw new RangeError(`counter name "${name}" must match ${NAME_RE}`);
  if (!labels) return name;
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return name;
  return `${name}{${keys.map((k) => `${k}=${labels[k]}`).join(",")}}`;
}

export function createCounters(): CounterRegistry {
  const series = new Map<
    string,
    { kind: "counter" | "gauge"; name: string; labels: CounterLabels; s: Series }
  >();
  function get(kind: "counter" | "gauge", name: string, labels?: CounterLabels): Series {
    const full = seriesName(name, labels);
    const have = series.get(full);
    if (have) {
      if (have.kind !== kind) throw new TypeError(`"${full}" is a ${have.kind}, not a ${kind}`);
      return have.s;
    }
    const s = new Series(kind === "counter");
    series.set(full, { kind, name, labels: { ...labels }, s });
    return s;
  }
  return {
    counter: (name, labels) => get("counter", name, labels),
    gauge: (name, labels) => get("gauge", name, labels),
    snapshot() {
      const out: Record<string, number> = {};
      for (const k of [...series.keys()].sort()) out[k] = series.get(k)!.s.value;
      return out;
    },
    series() {
      return [...series.keys()].sort().map((k) => {
        const e = series.get(k)!;
        return { name: e.name, labels: e.labels, kind: e.kind, value: e.s.value };
      });
    },
  };
}
