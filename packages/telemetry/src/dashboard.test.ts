/**
 * The Grafana dashboard of deploy/ reads only what the registry declares: every metric an expression names
 * is a declared metric by its Prometheus name, every label it groups or filters by is an attribute of the
 * registry (or Prometheus' own `instance`/`job`), and the panels the operators need are there.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { Attr, METRICS, prometheusName } from "./registry.js";

const DASHBOARD = new URL("../../../deploy/grafana/dashboards/cloudtap.json", import.meta.url);

interface Panel {
  readonly type: string;
  readonly title: string;
  readonly targets?: readonly { expr: string }[];
}

describe("telemetry - the Grafana dashboard", () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { uid: string; panels: Panel[] };
  const exprs = dashboard.panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })),
  );

  it("telemetry - dashboard: every metric and label of its expressions is the registry's", () => {
    const declared = new Set(METRICS.map(prometheusName));
    const labels = new Set([
      ...Object.values(Attr).map((a) => a.replace(/[^a-zA-Z0-9_]/g, "_")),
      "instance",
      "job",
    ]);
    const functions = new Set(["sum", "max", "min", "rate", "by", "without", "avg"]);
    assert.ok(exprs.length > 20);
    for (const { panel, expr } of exprs) {
      // Strip label matchers' values and Grafana's variables, then look at every identifier.
      const bare = expr.replace(/"[^"]*"/g, '""').replace(/\[\$__rate_interval\]/g, "");
      for (const m of bare.matchAll(/\b(cloudtap_[a-z0-9_]+)\b/g)) {
        const name = m[1]!;
        if (labels.has(name)) continue;
        assert.ok(declared.has(name), `${panel}: ${name} is not a declared metric`);
      }
      for (const m of bare.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g))
        for (const l of m[1]!.split(",").map((s) => s.trim()))
          assert.ok(labels.has(l), `${panel}: label ${l} is no registry attribute`);
      for (const m of bare.matchAll(/\{([^}]*)\}/g))
        for (const l of m[1]!.split(",").map((s) => s.split("=")[0]!.trim()))
          assert.ok(labels.has(l), `${panel}: label ${l} is no registry attribute`);
      for (const m of bare.matchAll(/\b([a-z_]+)\s*\(/g))
        assert.ok(functions.has(m[1]!) || m[1]!.startsWith("cloudtap_"), `${panel}: ${m[1]}`);
    }
  });

  it("telemetry - dashboard: lag, throughput per stage, decryption outcomes, drops by reason, JetStream pending", () => {
    const uses = (name: string) => exprs.some((e) => new RegExp(`\\b${name}\\b`).test(e.expr));
    for (const name of [
      "cloudtap_fetcher_lag",
      "cloudtap_fetcher_lag_blobs",
      "cloudtap_jetstream_pending",
      "cloudtap_fetcher_records_total",
      "cloudtap_stitcher_records_total",
      "cloudtap_stitcher_packets_total",
      "cloudtap_egress_packets_total",
      "cloudtap_egress_bytes_total",
      "cloudtap_stitcher_tls_outcomes_total",
      "cloudtap_fetcher_quarantined_total",
      "cloudtap_stitcher_drops_total",
      "cloudtap_egress_drops_total",
      "cloudtap_stitcher_keys_total",
      "cloudtap_keybroker_waits_total",
      "cloudtap_stitcher_gaps_total",
      "cloudtap_stitcher_duplicates_total",
    ])
      assert.ok(uses(name), `the dashboard shows ${name}`);
    assert.equal(dashboard.uid, "cloudtap");
  });
});
