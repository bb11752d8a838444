import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { InvalidLogLevelError } from "./errors.js";
import { createLogger, logFileFromEnv, logLevelFromEnv } from "./logger.js";
import { isSecretFieldName } from "./redact.js";

function capture(level?: "debug" | "info" | "warn") {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    service: "fetcher",
    instance: "f-1",
    ...(level ? { level } : {}),
    destination: (line) => {
      assert.ok(line.endsWith("\n"));
      lines.push(JSON.parse(line));
    },
    now: () => new Date(0),
  });
  return { logger, lines };
}

describe("service-kit logger", () => {
  it("service-kit logger - one JSON line with service, instance, pid, time and the fields", () => {
    const { logger, lines } = capture();
    logger.child({ run: "live" }).info("blob done", { blob: "data/x.ctap", batches: 3 });
    assert.deepEqual(lines, [
      {
        time: "1970-01-01T00:00:00.000Z",
        level: "info",
        service: "fetcher",
        instance: "f-1",
        pid: process.pid,
        msg: "blob done",
        run: "live",
        blob: "data/x.ctap",
        batches: 3,
      },
    ]);
  });

  it("service-kit logger - level filters; level from <SERVICE>_LOG_LEVEL, then LOG_LEVEL", () => {
    const { logger, lines } = capture("warn");
    logger.debug("d");
    logger.info("i");
    logger.warn("w");
    logger.error("e");
    assert.deepEqual(
      lines.map((l) => l["level"]),
      ["warn", "error"],
    );
    assert.equal(
      logLevelFromEnv("key-broker", { KEY_BROKER_LOG_LEVEL: "debug", LOG_LEVEL: "error" }),
      "debug",
    );
    assert.equal(logLevelFromEnv("fetcher", { LOG_LEVEL: "ERROR" }), "error");
    assert.equal(logLevelFromEnv("fetcher", {}), "info");
    assert.throws(() => logLevelFromEnv("fetcher", { FETCHER_LOG_LEVEL: "loud" }), InvalidLogLevelError);
  });

  it("service-kit logger - credential-like fields are redacted at any depth; errors keep name and cause", () => {
    const { logger, lines } = capture();
    const cause = Object.assign(new Error("denied"), { code: "EACCES" });
    logger.error("store failed", {
      config: { FETCHER_SOURCE: "s3://b", aws: { access_key_id: "AKIA1", secret_access_key: "s3cr3t" } },
      password: "hunter2",
      token: "t",
      blobKey: "data/2025/a.ctap",
      pem: "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----",
      error: new Error("read failed", { cause }),
      bytes: new Uint8Array(5),
      big: 12n,
    });
    const line = lines[0]!;
    const text = JSON.stringify(line);
    for (const secret of ["AKIA1", "s3cr3t", "hunter2", "BEGIN PRIVATE"])
      assert.ok(!text.includes(secret), secret);
    assert.equal(line["blobKey"], "data/2025/a.ctap");
    assert.equal(line["bytes"], "<5 bytes>");
    assert.equal(line["big"], "12");
    assert.deepEqual(line["error"], {
      name: "Error",
      message: "read failed",
      cause: { name: "Error", message: "denied", code: "EACCES" },
    });
  });

  it("service-kit logger - a log file from <SERVICE>_LOG_FILE, then LOG_FILE, appended to, redacted too", () => {
    assert.equal(logFileFromEnv("stitcher", { STITCHER_LOG_FILE: "/a.log", LOG_FILE: "/b.log" }), "/a.log");
    assert.equal(logFileFromEnv("stitcher", { LOG_FILE: "/b.log" }), "/b.log");
    assert.equal(logFileFromEnv("stitcher", {}), undefined);
    const dir = mkdtempSync(join(tmpdir(), "service-kit-log-"));
    try {
      const file = join(dir, "sub", "stitcher.log");
      for (const n of [1, 2]) {
        createLogger({ service: "stitcher", destination: file }).warn("line", { n, sealingKey: "abcd" });
      }
      const lines = readFileSync(file, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      assert.deepEqual(
        lines.map((l) => [l.msg, l.n, l.sealingKey, l.level]),
        [
          ["line", 1, "[redacted]", "warn"],
          ["line", 2, "[redacted]", "warn"],
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("service-kit logger - which names count as credentials", () => {
    for (const n of [
      "secret",
      "password",
      "key",
      "token",
      "access_key",
      "secretAccessKey",
      "apiKey",
      "sealing-key",
    ]) {
      assert.ok(isSecretFieldName(n), n);
    }
    for (const n of ["blobKey", "objectKey", "keys_listed", "monkey", "run", "keyCount"]) {
      assert.ok(!isSecretFieldName(n), n);
    }
  });
});
