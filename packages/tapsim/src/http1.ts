/**
 * HTTP/1.1 client and server over any byte stream (a TLS socket or a plain TCP socket), written here rather
 * than taken from node:http so that every byte is ours: no Date from the wall clock, no header order or
 * casing chosen by the platform, deterministic bodies. Persistent connections with several exchanges, bodies
 * with Content-Length or chunked transfer coding, and the three ways a connection ends.
 */
import type { Duplex } from "node:stream";
import { bodyChunks } from "./body.js";
import { ByteReader, UnexpectedEndError } from "./byte-reader.js";
import type { ByteTally } from "./byte-tally.js";
import type { ConnectionPlan } from "./connection-plan.js";
import type { ConnectionTap } from "./connection-tap.js";
import { type HttpExchangePlan, REASON_PHRASES } from "./exchange-plan.js";

export class HttpProtocolError extends Error {
  override readonly name = "HttpProtocolError";
}

/** What the client saw of one exchange; goes to the manifest. */
export interface HttpExchangeResult {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly requestBodyLength: number;
  readonly responseBodyLength: number;
}

const MAX_HEAD_BYTES = 64 * 1024;
/** Chunked responses are framed in pieces of this size. */
const CHUNK_FRAME_BYTES = 16 * 1024;

export const SERVER_SOFTWARE = "tapsim/1 (simulated origin)";

function hasBody(status: number): boolean {
  return status !== 204 && status !== 304;
}

export function authority(plan: ConnectionPlan): string {
  const defaultPort = plan.protocol === "http" ? 80 : 443;
  return plan.server.port === defaultPort ? plan.service.host : `${plan.service.host}:${plan.server.port}`;
}

/** Writes to a stream, honouring backpressure and counting what was written. */
async function writeAll(socket: Duplex, chunk: Uint8Array, tally?: ByteTally): Promise<void> {
  tally?.update(chunk);
  if (!socket.write(chunk)) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        socket.off("drain", ok);
        socket.off("close", closed);
        socket.off("error", done);
        if (err) reject(err);
        else resolve();
      };
      const ok = () => done();
      const closed = () => done(new UnexpectedEndError("stream closed while writing"));
      socket.once("drain", ok);
      socket.once("close", closed);
      socket.once("error", done);
    });
  }
}

function headerBlock(lines: readonly string[]): Buffer {
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
}

interface ParsedHead {
  readonly startLine: string;
  readonly headers: ReadonlyMap<string, string>;
}

function parseHead(raw: Buffer): ParsedHead {
  const lines = raw.toString("latin1").split("\r\n");
  const startLine = lines.shift() ?? "";
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpProtocolError(`malformed header line "${line}"`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { startLine, headers };
}

/** Reads a message body framed by Content-Length or chunked coding; returns its length. */
async function readBody(reader: ByteReader, headers: ReadonlyMap<string, string>): Promise<number> {
  if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") {
    let total = 0;
    for (;;) {
      const line = await reader.readUntil("\r\n", 1024);
      if (line === undefined) throw new UnexpectedEndError("stream ended before a chunk size");
      const size = Number.parseInt(line.toString("latin1").split(";")[0]!, 16);
      if (!Number.isInteger(size) || size < 0)
        throw new HttpProtocolError(`bad chunk size "${line.toString("latin1")}"`);
      if (size === 0) {
        // No trailers are sent: the last chunk is followed by the empty line.
        const end = await reader.readUntil("\r\n", 1024);
        if (end === undefined || end.length !== 0) throw new HttpProtocolError("trailers are not expected");
        return total;
      }
      await reader.skip(size);
      total += size;
      const crlf = await reader.read(2);
      if (crlf.toString("latin1") !== "\r\n") throw new HttpProtocolError("chunk not followed by CRLF");
    }
  }
  const length = Number(headers.get("content-length") ?? "0");
  if (!Number.isSafeInteger(length) || length < 0) throw new HttpProtocolError("bad content-length");
  await reader.skip(length);
  return length;
}

export interface Http1ClientOptions {
  readonly plan: ConnectionPlan;
  readonly socket: Duplex;
  readonly tap: ConnectionTap;
  /** The application bytes written and read by the client. */
  readonly sent: ByteTally;
  readonly received: ByteTally;
  /** Aborts the connection with a TCP reset (the raw socket under any TLS). */
  readonly reset: () => void;
}

function requestHead(plan: ConnectionPlan, ex: HttpExchangePlan): Buffer {
  const lines = [
    `${ex.method} ${ex.path} HTTP/1.1`,
    `Host: ${authority(plan)}`,
    `User-Agent: ${plan.device.userAgent}`,
    "Accept: */*",
    "Accept-Encoding: identity",
  ];
  for (const [name, value] of ex.requestHeaders) lines.push(`${name}: ${value}`);
  if (ex.requestBody) {
    lines.push(`Content-Type: ${ex.requestBody.contentType}`);
    lines.push(`Content-Length: ${ex.requestBody.length}`);
  }
  return headerBlock(lines);
}

/** Runs the planned exchanges as a client, then ends the connection the planned way. */
export async function runHttp1Client(options: Http1ClientOptions): Promise<HttpExchangeResult[]> {
  const { plan, socket, tap, sent, received } = options;
  socket.on("data", (chunk: Buffer) => received.update(chunk));
  const reader = new ByteReader(socket);
  const results: HttpExchangeResult[] = [];
  let serverClosing = false;
  for (const ex of plan.exchanges) {
    tap.advance(ex.thinkNs);
    await writeAll(socket, requestHead(plan, ex), sent);
    if (ex.requestBody) for (const chunk of bodyChunks(ex.requestBody)) await writeAll(socket, chunk, sent);

    const head = await reader.readUntil("\r\n\r\n", MAX_HEAD_BYTES);
    if (head === undefined)
      throw new UnexpectedEndError(`connection closed before the response to ${ex.path}`);
    const { startLine, headers } = parseHead(head);
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(startLine);
    if (!m) throw new HttpProtocolError(`bad status line "${startLine}"`);
    const status = Number(m[1]);
    const responseBodyLength = hasBody(status) ? await readBody(reader, headers) : 0;
    if (status !== ex.status || responseBodyLength !== ex.responseBody.length) {
      throw new HttpProtocolError(
        `${ex.method} ${ex.path}: got ${status} with ${responseBodyLength} bytes, planned ${ex.status} with ${ex.responseBody.length}`,
      );
    }
    serverClosing = headers.get("connection")?.toLowerCase() === "close";
    results.push({
      method: ex.method,
      path: ex.path,
      status,
      requestBodyLength: ex.requestBody?.length ?? 0,
      responseBodyLength,
    });
    if (serverClosing) break;
  }
  if (results.length !== plan.exchanges.length) {
    throw new HttpProtocolError(
      `server closed after ${results.length} of ${plan.exchanges.length} exchanges`,
    );
  }
  const closed = new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    else socket.once("close", () => resolve());
  });
  if (plan.closeMode === "client-rst") {
    options.reset();
  } else if (serverClosing) {
    if (!(await reader.atEnd())) throw new HttpProtocolError("bytes after a Connection: close response");
    socket.end();
  } else {
    socket.end();
    if (!(await reader.atEnd())) throw new HttpProtocolError("server sent bytes after the last response");
  }
  await closed;
  return results;
}

export interface Http1ServerOptions {
  readonly plan: ConnectionPlan;
  readonly socket: Duplex;
}

function responseHead(plan: ConnectionPlan, ex: HttpExchangePlan, last: boolean): Buffer {
  const lines = [
    `HTTP/1.1 ${ex.status} ${REASON_PHRASES[ex.status] ?? "Unknown"}`,
    `Date: ${plan.httpDate}`,
    `Server: ${SERVER_SOFTWARE}`,
  ];
  if (hasBody(ex.status)) {
    lines.push(`Content-Type: ${ex.responseBody.contentType}`);
    lines.push(ex.chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${ex.responseBody.length}`);
  }
  for (const [name, value] of ex.responseHeaders) lines.push(`${name}: ${value}`);
  if (last && plan.closeMode === "server-fin") lines.push("Connection: close");
  return headerBlock(lines);
}

/** Serves one connection: answers each request with the planned response. */
export async function serveHttp1(options: Http1ServerOptions): Promise<void> {
  const { plan, socket } = options;
  const reader = new ByteReader(socket);
  for (let i = 0; ; i++) {
    const head = await reader.readUntil("\r\n\r\n", MAX_HEAD_BYTES);
    if (head === undefined) break; // the client closed the connection
    const ex = plan.exchanges[i];
    const { startLine, headers } = parseHead(head);
    if (!ex || startLine !== `${ex.method} ${ex.path} HTTP/1.1`) {
      throw new HttpProtocolError(`request #${i} "${startLine}" is not the planned one`);
    }
    const bodyLength = await readBody(reader, headers);
    if (bodyLength !== (ex.requestBody?.length ?? 0)) {
      throw new HttpProtocolError(
        `request #${i} body of ${bodyLength} bytes, planned ${ex.requestBody?.length ?? 0}`,
      );
    }
    const last = i === plan.exchanges.length - 1;
    await writeAll(socket, responseHead(plan, ex, last));
    if (hasBody(ex.status)) {
      for (const chunk of bodyChunks(ex.responseBody)) {
        if (!ex.chunked) {
          await writeAll(socket, chunk);
          continue;
        }
        for (let at = 0; at < chunk.length; at += CHUNK_FRAME_BYTES) {
          const piece = chunk.subarray(at, Math.min(chunk.length, at + CHUNK_FRAME_BYTES));
          await writeAll(socket, Buffer.from(`${piece.length.toString(16)}\r\n`, "latin1"));
          await writeAll(socket, piece);
          await writeAll(socket, Buffer.from("\r\n", "latin1"));
        }
      }
      if (ex.chunked) await writeAll(socket, Buffer.from("0\r\n\r\n", "latin1"));
    }
    if (last && plan.closeMode === "server-fin") {
      socket.end();
      return;
    }
  }
  socket.end();
}
