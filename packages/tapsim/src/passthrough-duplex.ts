import { Duplex } from "node:stream";
import type { ByteTally } from "./byte-tally.js";

export interface PassthroughTallies {
  /** Counts what is written through the wrapper into `inner`. */
  readonly sent?: ByteTally;
  /** Counts what `inner` delivers through the wrapper. */
  readonly received?: ByteTally;
}

/**
 * A Duplex that passes everything through to `inner`, with backpressure both ways, optionally counting and
 * hashing each direction. Two uses: under node:http2, to see the exact bytes it writes into and reads out of
 * TLS; and under node:tls, so that TLS does not take over the TCP socket's handle and the TCP socket stays
 * ours to reset (`resetAndDestroy`) or destroy at any time.
 */
export function createPassthroughDuplex(inner: Duplex, tallies: PassthroughTallies = {}): Duplex {
  const { sent, received } = tallies;
  const outer: Duplex = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      sent?.update(chunk);
      if (inner.write(chunk)) callback();
      else inner.once("drain", () => callback());
    },
    final(callback) {
      inner.end();
      callback();
    },
    read() {
      if (inner.isPaused()) inner.resume();
    },
    destroy(err, callback) {
      if (!inner.destroyed) {
        if (err) inner.destroy(err);
        else inner.end();
      }
      callback(err);
    },
  });
  inner.on("data", (chunk: Buffer) => {
    received?.update(chunk);
    if (!outer.push(chunk)) inner.pause();
  });
  inner.on("end", () => outer.push(null));
  inner.on("error", (err) => outer.destroy(err));
  inner.on("close", () => {
    if (!outer.destroyed) outer.destroy();
  });
  return outer;
}
