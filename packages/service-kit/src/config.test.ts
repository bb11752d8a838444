import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { describeConfig, loadConfig } from "./config.js";
import {
  hexKey,
  integer,
  parseBoolean,
  parseDurationMs,
  parseHostPort,
  parseIntegerRange,
  parseSize,
  parseString,
  parseTimestampNs,
} from "./config-parsers.js";
import { ConfigError, ConfigFileError } from "./errors.js";

const spec = {
  source: { env: "FETCHER_SOURCE", parse: parseString, doc: "data store URL" },
  pollMs: { env: "FETCHER_POLL", parse: parseDurationMs, default: 30_000, doc: "listing interval" },
  shards: { env: "FETCHER_SHARDS", parse: integer({ min: 1, max: 1024 }), default: 4, doc: "shard count" },
  keyBroker: { env: "KEYBROKER_ADDR", parse: parseHostPort, optional: true, doc: "key broker" },
  sealKey: { env: "FETCHER_SEAL_KEY", parse: hexKey(4), optional: true, secret: true, doc: "sealing key" },
} as const;

describe("service-kit config - parsers", () => {
  const cases: { name: string; run: () => unknown; want: unknown }[] = [
    { name: "duration 30s", run: () => parseDurationMs("30s"), want: 30_000 },
    { name: "duration 5m", run: () => parseDurationMs("5m"), want: 300_000 },
    { name: "duration 1h30m", run: () => parseDurationMs("1h30m"), want: 5_400_000 },
    { name: "duration 250ms", run: () => parseDurationMs("250ms"), want: 250 },
    { name: "duration bare ms", run: () => parseDurationMs("1500"), want: 1500 },
    { name: "size 1MiB", run: () => parseSize("1MiB"), want: 1024 * 1024 },
    { name: "size 512 KiB", run: () => parseSize("512 KiB"), want: 512 * 1024 },
    { name: "size 10GB", run: () => parseSize("10GB"), want: 10e9 },
    { name: "size bytes", run: () => parseSize("4096"), want: 4096 },
    { name: "host:port", run: () => parseHostPort("nats:4222"), want: { host: "nats", port: 4222 } },
    { name: "[v6]:port", run: () => parseHostPort("[::1]:50051"), want: { host: "::1", port: 50051 } },
    { name: ":port", run: () => parseHostPort(":9090"), want: { host: "0.0.0.0", port: 9090 } },
    { name: "range", run: () => parseIntegerRange("0-7"), want: { first: 0, last: 7 } },
    { name: "range single", run: () => parseIntegerRange("3"), want: { first: 3, last: 3 } },
    { name: "bool yes", run: () => parseBoolean("YES"), want: true },
    { name: "bool 0", run: () => parseBoolean("0"), want: false },
    { name: "hex key", run: () => [...hexKey(2)("0aFF")], want: [10, 255] },
    {
      name: "time iso",
      run: () => parseTimestampNs("2025-03-14T09:00:00.000001Z"),
      want: 1741942800000001000n,
    },
    { name: "time ns", run: () => parseTimestampNs("1741942800000000000"), want: 1741942800000000000n },
  ];
  for (const c of cases) it(`service-kit config - parses ${c.name}`, () => assert.deepEqual(c.run(), c.want));

  const bad: { name: string; run: () => unknown; message: RegExp }[] = [
    { name: "duration unit", run: () => parseDurationMs("5 minutes"), message: /duration/ },
    { name: "size unit", run: () => parseSize("1XB"), message: /size/ },
    { name: "port range", run: () => parseHostPort("a:70000"), message: /above 65535/ },
    { name: "bare v6", run: () => parseHostPort("::1:80"), message: /brackets/ },
    { name: "integer range", run: () => integer({ max: 3 })("4"), message: /at most 3/ },
    { name: "reversed range", run: () => parseIntegerRange("7-0"), message: /below/ },
    { name: "bool", run: () => parseBoolean("maybe"), message: /true or false/ },
    { name: "hex length", run: () => hexKey(4)("00"), message: /4 bytes/ },
    { name: "time without zone", run: () => parseTimestampNs("2025-03-14T09:00:00"), message: /zone/ },
  ];
  for (const c of bad) it(`service-kit config - refuses ${c.name}`, () => assert.throws(c.run, c.message));
});

describe("service-kit config - loading", () => {
  const dir = mkdtempSync(join(tmpdir(), "cloudtap-config-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("service-kit config - environment, defaults and optional fields", () => {
    const config = loadConfig("fetcher", spec, {
      env: { FETCHER_SOURCE: "./store", FETCHER_POLL: "5s", KEYBROKER_ADDR: "kb:50051" },
    });
    assert.equal(config.values.source, "./store");
    assert.equal(config.values.pollMs, 5000);
    assert.equal(config.values.shards, 4);
    assert.deepEqual(config.values.keyBroker, { host: "kb", port: 50051 });
    assert.equal(config.values.sealKey, undefined);
    assert.deepEqual(config.sources, {
      source: "env",
      pollMs: "env",
      shards: "default",
      keyBroker: "env",
      sealKey: "unset",
    });
  });

  it("service-kit config - every bad variable is named in one ConfigError, secrets not echoed", () => {
    const err = (() => {
      try {
        loadConfig("fetcher", spec, { env: { FETCHER_SHARDS: "0", FETCHER_SEAL_KEY: "notsecrethex" } });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof ConfigError);
    assert.equal(err.variable, "FETCHER_SOURCE");
    assert.deepEqual(
      err.problems.map((p) => p.variable),
      ["FETCHER_SOURCE", "FETCHER_SHARDS", "FETCHER_SEAL_KEY"],
    );
    assert.match(err.message, /FETCHER_SHARDS: must be at least 1 \(got "0"\)/);
    assert.doesNotMatch(err.message, /notsecrethex/);
  });

  it("service-kit config - YAML file under the environment; the environment wins", () => {
    const file = join(dir, "fetcher.yaml");
    writeFileSync(file, "source: /data/store\npoll: 1m\nshards: 8\nkeybroker_addr: kb:1\n");
    const config = loadConfig("fetcher", spec, { env: { FETCHER_CONFIG: file, FETCHER_SHARDS: "2" } });
    assert.equal(config.values.source, "/data/store");
    assert.equal(config.values.pollMs, 60_000);
    assert.equal(config.values.shards, 2);
    assert.equal(config.sources.pollMs, "file");
    assert.equal(config.file, file);
  });

  it("service-kit config - an unknown YAML key or a nested value is refused by name", () => {
    const file = join(dir, "typo.yaml");
    writeFileSync(file, "source: x\npol: 1m\n");
    assert.throws(
      () => loadConfig("fetcher", spec, { env: { FETCHER_CONFIG: file } }),
      (e: unknown) => e instanceof ConfigError && e.variable === "FETCHER_CONFIG" && /"pol"/.test(e.message),
    );
    const nested = join(dir, "nested.yaml");
    writeFileSync(nested, "source: [a, b]\n");
    assert.throws(() => loadConfig("fetcher", spec, { env: { FETCHER_CONFIG: nested } }), ConfigFileError);
    assert.throws(
      () => loadConfig("fetcher", spec, { env: { FETCHER_CONFIG: join(dir, "missing.yaml") } }),
      /FETCHER_CONFIG: config file .* cannot be read/,
    );
  });

  it("service-kit config - redacted() shows every variable, secrets as [redacted]", () => {
    const config = loadConfig("fetcher", spec, {
      env: { FETCHER_SOURCE: "./s", FETCHER_SEAL_KEY: "00112233", KEYBROKER_ADDR: "kb:7" },
    });
    assert.deepEqual(config.redacted(), {
      FETCHER_SOURCE: "./s",
      FETCHER_POLL: "30000",
      FETCHER_SHARDS: "4",
      KEYBROKER_ADDR: "kb:7",
      FETCHER_SEAL_KEY: "[redacted]",
    });
  });

  it("service-kit config - describeConfig lists the variables", () => {
    const table = describeConfig(spec);
    assert.match(table, /\| `FETCHER_SOURCE` \| \*\*required\*\* \| data store URL \|/);
    assert.match(table, /\| `FETCHER_SEAL_KEY` \| secret \|/);
  });
});
