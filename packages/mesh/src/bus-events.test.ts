import assert from "node:assert/strict";
import { test } from "node:test";
import { connectBus } from "@cloudtap/bus";
import { createCounters, createLogger } from "@cloudtap/service-kit";
import { startNatsServer } from "@cloudtap/test-harness";
import { reportBusEvents } from "./bus-events.js";

test("mesh - a lost NATS connection is counted and logged as a warning; the rest are logged", async () => {
  const nats = await startNatsServer();
  const lines: { level: string; event: string }[] = [];
  const log = createLogger({
    service: "test",
    level: "info",
    destination: (line) => {
      const o = JSON.parse(line) as { level: string; msg: string; event?: string };
      if (o.msg === "nats") lines.push({ level: o.level, event: o.event ?? "" });
    },
  });
  const counters = createCounters();
  const bus = await connectBus({
    servers: nats.url,
    name: "bus-events",
    onEvent: reportBusEvents(log, counters),
  });
  try {
    await nats.restart();
    const deadline = Date.now() + 15_000;
    while (!lines.some((l) => l.event === "reconnected") && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    assert.equal(counters.snapshot()["nats_disconnects"], 1);
    const byEvent = new Map(lines.map((l) => [l.event, l.level]));
    assert.ok(byEvent.has("connected") && byEvent.has("reconnected"), JSON.stringify(lines));
    assert.equal(byEvent.get("disconnected"), "warn");
    assert.equal(byEvent.get("reconnected"), "info");
  } finally {
    await bus.close();
    await nats.cleanup();
  }
});
