import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { createShutdown } from "./shutdown.js";

describe("service-kit shutdown", () => {
  it("service-kit shutdown - aborts the signal, runs steps in reverse order, exits 0", async () => {
    const order: string[] = [];
    const codes: number[] = [];
    const sd = createShutdown({ signals: [], exit: (c) => codes.push(c) });
    sd.onShutdown("nats", () => {
      order.push("nats");
    });
    sd.onShutdown("consumers", async () => {
      await new Promise((r) => setTimeout(r, 10));
      order.push("consumers");
    });
    sd.onShutdown("rpc", () => {
      assert.ok(sd.signal.aborted);
      order.push("rpc");
    });
    const code = await sd.shutdown("test");
    assert.equal(code, 0);
    assert.deepEqual(order, ["rpc", "consumers", "nats"]);
    assert.deepEqual(codes, [0]);
    assert.equal(await sd.shutdown("again"), 0, "a second call is the same shutdown");
    assert.deepEqual(codes, [0]);
  });

  it("service-kit shutdown - a failing step is logged and the rest still run (exit 1)", async () => {
    const order: string[] = [];
    const sd = createShutdown({ signals: [], exit: () => {} });
    sd.onShutdown("last", () => {
      order.push("last");
    });
    sd.onShutdown("boom", () => {
      throw new Error("boom");
    });
    assert.equal(await sd.shutdown("test"), 1);
    assert.deepEqual(order, ["last"]);
  });

  it("service-kit shutdown - a step past the deadline exits 1 at once, its signal aborted", async () => {
    let stepSignal: AbortSignal | undefined;
    const codes: number[] = [];
    const sd = createShutdown({ signals: [], deadlineMs: 30, exit: (c) => codes.push(c) });
    sd.onShutdown("never-reached", () => assert.fail("steps after a deadline do not run"));
    sd.onShutdown("hangs", (signal) => {
      stepSignal = signal;
      return new Promise(() => {});
    });
    assert.equal(await sd.shutdown("test"), 1);
    assert.deepEqual(codes, [1]);
    assert.ok(stepSignal?.aborted);
  });

  it("service-kit shutdown - SIGTERM in a real process runs the steps and exits", async () => {
    const script = `
      import { createShutdown } from "./packages/service-kit/src/shutdown.ts";
      const sd = createShutdown();
      sd.onShutdown("a", () => console.log("step a"));
      sd.onShutdown("b", async () => { await new Promise((r) => setTimeout(r, 20)); console.log("step b"); });
      setInterval(() => {}, 1000);
      console.log("ready");
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: new URL("../../..", import.meta.url).pathname,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.setEncoding("utf8");
    await new Promise<void>((resolve) =>
      child.stdout.on("data", (d: string) => {
        out += d;
        if (out.includes("ready")) resolve();
      }),
    );
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
    assert.deepEqual(out.trim().split("\n"), ["ready", "step b", "step a"]);
  });
});
