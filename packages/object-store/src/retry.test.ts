import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ObjectNotFoundError,
  type StoreErrorContext,
  StoreTimeoutError,
  StoreUnavailableError,
  StoreUnreachableError,
} from "./errors.js";
import { classifyCommonFailure } from "./remote-failure.js";
import {
  backoffMs,
  type CallFailure,
  DEFAULT_RETRY_POLICY,
  type OpenedRead,
  type RetryPolicy,
  resumableRead,
  withRetries,
} from "./retry.js";

const context: StoreErrorContext = { store: "s3://tap-data/t1", credentials: { file: "creds.json" } };
/** No waiting between attempts (the jitter draws 0), short call timeouts. */
const quick: RetryPolicy = {
  attempts: 4,
  baseDelayMs: 100,
  maxDelayMs: 1000,
  budgetMs: 60_000,
  callTimeoutMs: 5000,
};
const noJitter = () => 0;

/** An HTTP-ish failure as the SDKs throw them, classified by the shared rules. */
function httpError(status: number, code?: string): Error {
  return Object.assign(new Error(`HTTP ${status}`), { status, code });
}
const classify = (err: unknown, timedOut: boolean): CallFailure => {
  const e = err as { status?: number; code?: string };
  if (e.status === 412)
    return {
      retryable: false,
      error: new ObjectNotFoundError("k", { store: `${context.store} (replaced while read)` }),
    };
  return classifyCommonFailure(err, timedOut, context, {
    status: e.status,
    code: e.code,
    timeoutMs: quick.callTimeoutMs,
  });
};

describe("object-store - retries", () => {
  it("backoff: full jitter under a cap that doubles from the base delay up to the maximum", () => {
    const p = DEFAULT_RETRY_POLICY;
    for (let attempt = 1; attempt <= 12; attempt++) {
      const cap = Math.min(p.maxDelayMs, p.baseDelayMs * 2 ** (attempt - 1));
      assert.equal(
        backoffMs(p, attempt, () => 0),
        0,
      );
      const top = backoffMs(p, attempt, () => 0.999999);
      assert.ok(top < cap && top >= cap - 1, `attempt ${attempt}: ${top} under ${cap}`);
      assert.equal(
        backoffMs(p, attempt, () => 0.5),
        Math.floor(cap / 2),
      );
    }
    assert.equal(
      backoffMs(p, 1, () => 0.999999),
      99,
    );
    assert.equal(
      backoffMs(p, 4, () => 0.999999),
      799,
    );
    assert.equal(
      backoffMs(p, 30, () => 0.999999),
      4999,
      "capped at maxDelayMs",
    );
  });

  it("which failures are retried: throttling, 5xx, 408, broken connections, timeouts, a refused connection", () => {
    const retried: [string, unknown, boolean][] = [
      ["503", httpError(503), false],
      ["500", httpError(500), false],
      ["429", httpError(429), false],
      ["408", httpError(408), false],
      ["SlowDown (S3, with a 200-range status)", httpError(200, "SlowDown"), false],
      ["ServerBusy (Azure)", httpError(200, "ServerBusy"), false],
      ["ECONNRESET", Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }), false],
      ["socket hang up", new Error("socket hang up"), false],
      [
        "a wrapped premature close",
        new Error("fetch failed", { cause: { code: "ERR_STREAM_PREMATURE_CLOSE" } }),
        false,
      ],
      ["the call's own timeout", new Error("aborted"), true],
      ["ECONNREFUSED", Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), false],
    ];
    for (const [what, err, timedOut] of retried) assert.equal(classify(err, timedOut).retryable, true, what);
    assert.ok(classify(new Error("x"), true).error instanceof StoreTimeoutError);
    assert.ok(classify(httpError(503), false).error instanceof StoreUnavailableError);
    const refused = classify(
      Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
      false,
    );
    assert.ok(refused.error instanceof StoreUnreachableError);

    const notRetried: [string, unknown][] = [
      ["400", httpError(400, "InvalidArgument")],
      ["a plain error", new Error("something else")],
      ["ENOTFOUND (no such host)", Object.assign(new Error("getaddrinfo ENOTFOUND"), { code: "ENOTFOUND" })],
      ["412 (the object changed)", httpError(412)],
    ];
    for (const [what, err] of notRetried) assert.equal(classify(err, false).retryable, false, what);
    assert.match(
      classify(httpError(400, "InvalidArgument"), false).error.message,
      /s3:\/\/tap-data\/t1.*creds\.json/,
    );
  });

  it("withRetries: retries retryable failures until one succeeds, telling onRetry", async () => {
    let calls = 0;
    const retries: number[] = [];
    const value = await withRetries(
      async (_signal, attempt) => {
        calls++;
        if (attempt < 3) throw httpError(503);
        return "ok";
      },
      { policy: quick, classify, random: noJitter, onRetry: (n) => retries.push(n) },
    );
    assert.equal(value, "ok");
    assert.equal(calls, 3);
    assert.deepEqual(retries, [1, 2]);
  });

  it("withRetries: a failure that is not retryable throws its error at once", async () => {
    let calls = 0;
    await assert.rejects(
      withRetries(
        async () => {
          calls++;
          throw httpError(400, "InvalidArgument");
        },
        { policy: quick, classify, random: noJitter },
      ),
      (err: Error) => err.message.startsWith("the store refused the call (HTTP 400 InvalidArgument)"),
    );
    assert.equal(calls, 1);
  });

  it("withRetries: bounded in attempts, then the classified error", async () => {
    let calls = 0;
    await assert.rejects(
      withRetries(
        async () => {
          calls++;
          throw httpError(503);
        },
        { policy: quick, classify, random: noJitter },
      ),
      StoreUnavailableError,
    );
    assert.equal(calls, quick.attempts);
  });

  it("withRetries: bounded in time: no attempt starts when its backoff would pass the budget", async () => {
    let calls = 0;
    await assert.rejects(
      withRetries(
        async () => {
          calls++;
          throw httpError(503);
        },
        // The first backoff draws 99 ms, past a 50 ms budget: one attempt only, no wait.
        { policy: { ...quick, budgetMs: 50 }, classify, random: () => 0.999999 },
      ),
      StoreUnavailableError,
    );
    assert.equal(calls, 1);
  });

  it("withRetries: a call that hangs is aborted by its timeout and retried; when all time out, a timeout error", async () => {
    let calls = 0;
    const hang = (signal: AbortSignal) =>
      new Promise<never>((_resolve, reject) => {
        calls++;
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    const value = await withRetries(
      (signal, attempt) => (attempt === 1 ? hang(signal) : Promise.resolve(7)),
      {
        policy: { ...quick, callTimeoutMs: 20 },
        classify,
        random: noJitter,
      },
    );
    assert.equal(value, 7);
    assert.equal(calls, 1);
    await assert.rejects(
      withRetries(hang, { policy: { ...quick, attempts: 2, callTimeoutMs: 20 }, classify, random: noJitter }),
      (err: Error) => err instanceof StoreTimeoutError && /no answer within/.test(err.message),
    );
    assert.equal(calls, 3);
  });

  it("withRetries: the caller's abort is thrown as is and never retried", async () => {
    const controller = new AbortController();
    const reason = new Error("stopped by the caller");
    let calls = 0;
    await assert.rejects(
      withRetries(
        async () => {
          calls++;
          controller.abort(reason);
          throw httpError(503);
        },
        { policy: quick, classify, random: noJitter, signal: controller.signal },
      ),
      (err) => err === reason,
    );
    assert.equal(calls, 1);
  });
});

/**
 * An object whose reads break: the n-th open's body stops after `breakAfter[n]` bytes (a reset, or a body
 * that ends short of its length). Each open records its range and version; `replace` makes a new version.
 */
function flakyObject(
  size: number,
  breakAfter: readonly (number | undefined)[],
  how: "reset" | "short" = "reset",
) {
  let data = Buffer.alloc(size);
  for (let i = 0; i < size; i++) data[i] = (i * 7 + 3) & 0xff;
  let version = "v1";
  const opens: { start: number; end?: number | undefined; version: string | undefined }[] = [];
  const open = async (
    range: { start: number; end?: number | undefined },
    asked: string | undefined,
  ): Promise<OpenedRead> => {
    const n = opens.length;
    opens.push({ ...range, version: asked });
    if (asked !== undefined && asked !== version) throw httpError(412);
    const bytes = data.subarray(range.start, range.end ?? size);
    const cut = breakAfter[n];
    async function* body() {
      // In chunks of 1000 bytes, as a socket delivers them.
      for (let at = 0; at < (cut ?? bytes.length); at += 1000)
        yield bytes.subarray(at, Math.min(at + 1000, cut ?? bytes.length));
      if (cut !== undefined && how === "reset")
        throw Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    }
    return { body: body(), length: bytes.length, version };
  };
  return {
    open,
    opens,
    get data() {
      return data;
    },
    replace() {
      data = Buffer.from(data).reverse();
      version = "v2";
    },
  };
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe("object-store - resumable reads", () => {
  it("a read that breaks mid-stream resumes from the last byte received, of the same version", async () => {
    const object = flakyObject(10_000, [3000, 2500]);
    const resumed: number[] = [];
    const out = await collect(
      resumableRead({
        start: 0,
        policy: quick,
        classify,
        random: noJitter,
        open: object.open,
        onResume: (p) => resumed.push(p),
      }),
    );
    assert.ok(out.equals(object.data), "every byte once, in order");
    assert.deepEqual(resumed, [3000, 5500]);
    assert.deepEqual(object.opens, [
      { start: 0, end: undefined, version: undefined },
      { start: 3000, end: undefined, version: "v1" },
      { start: 5500, end: undefined, version: "v1" },
    ]);
  });

  it("a body that ends short of its length is a broken read too; a ranged read resumes inside its range", async () => {
    const object = flakyObject(10_000, [1500], "short");
    const out = await collect(
      resumableRead({ start: 200, end: 9000, policy: quick, classify, random: noJitter, open: object.open }),
    );
    assert.ok(out.equals(object.data.subarray(200, 9000)));
    assert.deepEqual(object.opens[1], { start: 1700, end: 9000, version: "v1" });
  });

  it("a read that keeps making progress is not cut by the attempt count: only failures in a row are", async () => {
    // Six breaks, each after some progress, with attempts = 4: the read still completes.
    const object = flakyObject(10_000, [1000, 1000, 1000, 1000, 1000, 1000]);
    const out = await collect(
      resumableRead({ start: 0, policy: quick, classify, random: noJitter, open: object.open }),
    );
    assert.ok(out.equals(object.data));
    assert.equal(object.opens.length, 7);
  });

  it("breaks in a row with no progress are bounded: the classified error after the attempts", async () => {
    const object = flakyObject(10_000, [2000, 0, 0, 0, 0, 0, 0]);
    const got: Uint8Array[] = [];
    await assert.rejects(async () => {
      for await (const c of resumableRead({
        start: 0,
        policy: quick,
        classify,
        random: noJitter,
        open: object.open,
      }))
        got.push(c);
    }, StoreUnavailableError);
    assert.equal(Buffer.concat(got).length, 2000);
    // The open that made progress is the first attempt of the streak that follows it.
    assert.equal(object.opens.length, quick.attempts);
  });

  it("an object replaced between the break and the resumption is an error, not a splice of two versions", async () => {
    const object = flakyObject(10_000, [3000]);
    const got: Uint8Array[] = [];
    const read = resumableRead({ start: 0, policy: quick, classify, random: noJitter, open: object.open });
    await assert.rejects(
      async () => {
        for await (const c of read) {
          got.push(c);
          if (got.length === 1) object.replace();
        }
      },
      (err: Error) => err instanceof ObjectNotFoundError && /replaced while read/.test(err.message),
    );
    assert.equal(Buffer.concat(got).length, 3000, "only the first version's bytes came out");
    assert.deepEqual(object.opens[1], { start: 3000, end: undefined, version: "v1" });
    assert.equal(object.opens.length, 2, "not retried");
  });

  it("a body that stalls is cut by the gap timeout and resumed", async () => {
    const data = Buffer.alloc(4000, 9);
    const opens: number[] = [];
    const open = async (
      range: { start: number },
      _v: string | undefined,
      signal: AbortSignal,
    ): Promise<OpenedRead> => {
      opens.push(range.start);
      const first = opens.length === 1;
      async function* body() {
        yield data.subarray(range.start, range.start + 1000);
        if (first)
          await new Promise((_resolve, reject) =>
            signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
          );
        yield data.subarray(range.start + 1000);
      }
      return { body: body(), length: data.length - range.start, version: "e1" };
    };
    const out = await collect(
      resumableRead({ start: 0, policy: { ...quick, callTimeoutMs: 30 }, classify, random: noJitter, open }),
    );
    assert.ok(out.equals(data));
    assert.deepEqual(opens, [0, 1000]);
  });
});
