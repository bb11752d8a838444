/**
 * HTTP/2 client and server on node:http2. The client runs over a Duplex that wraps the TLS socket, so the
 * exact bytes node's HTTP/2 stack writes into TLS and reads out of it are counted and hashed. Flow-control
 * windows are opened wide (larger than any planned body) so that frame boundaries depend on the plan rather
 * than on when WINDOW_UPDATE frames happen to arrive.
 */
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  performServerHandshake,
  type ServerHttp2Stream,
} from "node:http2";
import type { TLSSocket } from "node:tls";
import { bodyChunks } from "./body.js";
import type { ByteTally } from "./byte-tally.js";
import type { ConnectionPlan } from "./connection-plan.js";
import type { ConnectionTap } from "./connection-tap.js";
import type { HttpExchangePlan } from "./exchange-plan.js";
import { authority, type HttpExchangeResult, HttpProtocolError, SERVER_SOFTWARE } from "./http1.js";
import { createPassthroughDuplex } from "./passthrough-duplex.js";

/** Stream and connection receive windows: above the largest planned body (6 MiB). */
const H2_WINDOW_BYTES = 8 * 1024 * 1024;

function hasBody(status: number): boolean {
  return status !== 204 && status !== 304;
}

async function writeStream(stream: ClientHttp2Stream | ServerHttp2Stream, chunk: Uint8Array): Promise<void> {
  if (stream.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      stream.off("drain", ok);
      stream.off("close", closed);
      if (err) reject(err);
      else resolve();
    };
    const ok = () => done();
    const closed = () => done(new HttpProtocolError("stream closed while writing"));
    stream.once("drain", ok);
    stream.once("close", closed);
  });
}

export interface Http2ClientOptions {
  readonly plan: ConnectionPlan;
  readonly socket: TLSSocket;
  readonly tap: ConnectionTap;
  readonly sent: ByteTally;
  readonly received: ByteTally;
  readonly reset: () => void;
}

function sessionSettled(session: ClientHttp2Session): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    session.once("error", reject);
    session.once("close", () => resolve());
  });
}

async function exchange(
  session: ClientHttp2Session,
  plan: ConnectionPlan,
  ex: HttpExchangePlan,
): Promise<HttpExchangeResult> {
  const headers: OutgoingHttpHeaders = {
    ":method": ex.method,
    ":path": ex.path,
    "user-agent": plan.device.userAgent,
    accept: "*/*",
  };
  for (const [name, value] of ex.requestHeaders) headers[name] = value;
  if (ex.requestBody) {
    headers["content-type"] = ex.requestBody.contentType;
    headers["content-length"] = String(ex.requestBody.length);
  }
  const stream = session.request(headers, { endStream: ex.requestBody === undefined });
  let responseBodyLength = 0;
  const response = new Promise<number>((resolve, reject) => {
    let status = 0;
    stream.once("response", (h: IncomingHttpHeaders) => {
      status = Number(h[":status"]);
    });
    stream.on("data", (chunk: Buffer) => {
      responseBodyLength += chunk.length;
    });
    stream.once("end", () => resolve(status));
    stream.once("error", reject);
    stream.once("close", () => {
      if (stream.rstCode !== constants.NGHTTP2_NO_ERROR) {
        reject(new HttpProtocolError(`${ex.path}: stream reset with code ${stream.rstCode}`));
      }
    });
  });
  if (ex.requestBody) {
    for (const chunk of bodyChunks(ex.requestBody)) await writeStream(stream, chunk);
    stream.end();
  }
  const status = await response;
  if (status !== ex.status || responseBodyLength !== ex.responseBody.length) {
    throw new HttpProtocolError(
      `${ex.method} ${ex.path}: got ${status} with ${responseBodyLength} bytes, planned ${ex.status} with ${ex.responseBody.length}`,
    );
  }
  return {
    method: ex.method,
    path: ex.path,
    status,
    requestBodyLength: ex.requestBody?.length ?? 0,
    responseBodyLength,
  };
}

/** Runs the planned exchanges wave by wave (the requests of a wave concurrently), then closes. */
export async function runHttp2Client(options: Http2ClientOptions): Promise<HttpExchangeResult[]> {
  const { plan, tap } = options;
  const duplex = createPassthroughDuplex(options.socket, { sent: options.sent, received: options.received });
  const session = connect(`https://${authority(plan)}`, {
    createConnection: () => duplex,
    settings: { enablePush: false, initialWindowSize: H2_WINDOW_BYTES },
  });
  const settled = sessionSettled(session);
  settled.catch(() => {});
  // Requests go out only after the server's SETTINGS arrived (and were acknowledged): the order of the first
  // frames is then the same on every run.
  await Promise.race([
    new Promise<void>((resolve) => session.once("remoteSettings", () => resolve())),
    settled.then(() => {
      throw new HttpProtocolError("HTTP/2 session closed before the server's SETTINGS");
    }),
  ]);
  session.setLocalWindowSize(H2_WINDOW_BYTES);

  const results: HttpExchangeResult[] = [];
  const waves = new Map<number, HttpExchangePlan[]>();
  for (const ex of plan.exchanges) waves.set(ex.wave, [...(waves.get(ex.wave) ?? []), ex]);
  for (const wave of waves.values()) {
    tap.advance(wave[0]!.thinkNs);
    results.push(...(await Promise.all(wave.map((ex) => exchange(session, plan, ex)))));
  }
  if (plan.closeMode === "client-rst") {
    options.reset();
    await new Promise<void>((resolve) => {
      if (options.socket.destroyed) resolve();
      else options.socket.once("close", () => resolve());
    });
    session.destroy();
    await settled.catch(() => {});
  } else {
    session.close();
    await settled;
  }
  return results;
}

export interface Http2ServerOptions {
  readonly plan: ConnectionPlan;
  readonly socket: TLSSocket;
}

/** Serves one HTTP/2 connection: every stream is matched to the planned exchange by its path. */
export function serveHttp2(options: Http2ServerOptions): Promise<void> {
  const { plan, socket } = options;
  const session = performServerHandshake(socket, {
    settings: { initialWindowSize: H2_WINDOW_BYTES, enablePush: false },
  });
  const served = new Set<string>();
  return new Promise<void>((resolve, reject) => {
    let failure: Error | undefined;
    const fail = (err: Error) => {
      failure ??= err;
      session.destroy();
    };
    session.once("connect", () => session.setLocalWindowSize(H2_WINDOW_BYTES));
    session.on("error", fail);
    session.once("close", () => (failure ? reject(failure) : resolve()));
    session.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      const path = headers[":path"];
      const ex = plan.exchanges.find((e) => e.path === path);
      if (!ex || served.has(ex.path) || headers[":method"] !== ex.method) {
        fail(new HttpProtocolError(`stream ${headers[":method"]} ${path} is not a planned request`));
        return;
      }
      served.add(ex.path);
      let bodyLength = 0;
      stream.on("data", (chunk: Buffer) => {
        bodyLength += chunk.length;
      });
      stream.on("error", (err) => fail(err));
      stream.once("end", () => {
        if (bodyLength !== (ex.requestBody?.length ?? 0)) {
          fail(
            new HttpProtocolError(
              `${ex.path}: request body of ${bodyLength} bytes, planned ${ex.requestBody?.length ?? 0}`,
            ),
          );
          return;
        }
        respond(stream, plan, ex).catch(fail);
      });
    });
  });
}

async function respond(stream: ServerHttp2Stream, plan: ConnectionPlan, ex: HttpExchangePlan): Promise<void> {
  const body = hasBody(ex.status);
  const headers: OutgoingHttpHeaders = {
    ":status": ex.status,
    date: plan.httpDate,
    server: SERVER_SOFTWARE,
  };
  if (body) {
    headers["content-type"] = ex.responseBody.contentType;
    headers["content-length"] = String(ex.responseBody.length);
  }
  for (const [name, value] of ex.responseHeaders) headers[name] = value;
  stream.respond(headers, { endStream: !body });
  if (!body) return;
  for (const chunk of bodyChunks(ex.responseBody)) await writeStream(stream, chunk);
  stream.end();
}
