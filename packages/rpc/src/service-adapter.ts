/**
 * protobuf-es service descriptors on grpc-js: a `ServiceDefinition` plus typed handlers for the server, and
 * a typed, promise-based client.
 *
 * Handlers are derived from the descriptor's methods, so a handler object that misses a method (or has the
 * wrong shape for one) does not compile:
 *
 *   unary             (request, context) => response | Promise<response>
 *   server streaming  (request, context) => AsyncIterable<response>
 *   client streaming  (requests, context) => Promise<response>
 *   bidi streaming    (requests, context) => AsyncIterable<response>
 *
 * Responses may be message init objects. A handler throws to fail the call: the error is mapped once, by
 * `toStatus`, and reported to `onError` (with its cause) for logging. `context.signal` aborts when the client
 * cancels, the deadline passes or the server shuts down. Stream writes wait for the transport to drain, so
 * a slow peer slows the producer instead of growing a buffer.
 */
import { once } from "node:events";
import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { injectMetadata } from "@cloudtap/telemetry";
import * as grpc from "@grpc/grpc-js";
import { ErrorCategory, fromStatus, RpcError, toStatus } from "./errors.js";

type MethodKind = DescMethod["methodKind"];
type MethodOf<S extends DescService> = S["method"];

export interface HandlerContext {
  readonly service: DescService;
  readonly method: DescMethod;
  /** Aborts on client cancel, deadline, or server shutdown. */
  readonly signal: AbortSignal;
  /** The call's deadline, or undefined when it has none. */
  readonly deadline: Date | undefined;
  readonly metadata: grpc.Metadata;
  /** The peer's address. */
  readonly peer: string;
  /** The transport's authentication (the verified peer certificate under mutual TLS). */
  getAuthContext(): AuthContext;
}

export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: HandlerContext,
) => MessageInitShape<O> | Promise<MessageInitShape<O>>;
export type ServerStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: HandlerContext,
) => AsyncIterable<MessageInitShape<O>>;
export type ClientStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  context: HandlerContext,
) => Promise<MessageInitShape<O>>;
export type BidiStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  context: HandlerContext,
) => AsyncIterable<MessageInitShape<O>>;

type HandlerOf<M> = M extends { methodKind: infer K; input: infer I; output: infer O }
  ? I extends DescMessage
    ? O extends DescMessage
      ? K extends "unary"
        ? UnaryHandler<I, O>
        : K extends "server_streaming"
          ? ServerStreamingHandler<I, O>
          : K extends "client_streaming"
            ? ClientStreamingHandler<I, O>
            : K extends "bidi_streaming"
              ? BidiStreamingHandler<I, O>
              : never
      : never
    : never
  : never;

/** One handler per method of the service, by the method's local (lowerCamel) name. */
export type ServiceHandlers<S extends DescService> = { [K in keyof MethodOf<S>]: HandlerOf<MethodOf<S>[K]> };

export interface ServiceAdapterOptions {
  /** Runs before every handler; throw (e.g. `requireIdentity`) to refuse the call. */
  readonly authorize?: (context: HandlerContext) => void;
  /** Called with every error a handler failed with, before it is mapped to a status. Log the cause here. */
  readonly onError?: (err: unknown, context: HandlerContext) => void;
  /** Aborts the signal of every call in flight (server shutdown). */
  readonly signal?: AbortSignal;
}

export interface GrpcService {
  readonly definition: grpc.ServiceDefinition;
  readonly implementation: grpc.UntypedServiceImplementation;
}

function isStreamingRequest(kind: MethodKind): boolean {
  return kind === "client_streaming" || kind === "bidi_streaming";
}
function isStreamingResponse(kind: MethodKind): boolean {
  return kind === "server_streaming" || kind === "bidi_streaming";
}

/** A Buffer seen as a plain Uint8Array, so that bytes fields decode to Uint8Array views rather than Buffers. */
function plainBytes(bytes: Buffer): Uint8Array {
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** An encoded message as a Buffer over the same memory (`Buffer.from(array)` would copy it once more). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const PRE_ENCODED = Symbol("cloudtap.rpc.preEncoded");
const PREFIX_FREE = Symbol("cloudtap.rpc.prefixFree");
/**
 * Set on a serialized message whose 5 bytes before it in its buffer are free: grpc-js (this project's patch
 * of its `IdentityHandler`) then writes the gRPC frame header there instead of copying the message into a
 * new buffer behind one.
 */
const FRAME_IN_PLACE = Symbol.for("cloudtap.grpc.frameInPlace");

/** Bytes of a gRPC message frame's header (compressed flag, u32 length). */
export const GRPC_FRAME_HEADER_BYTES = 5;

/**
 * A message its sender encoded itself (the protobuf binary form of the method's message), sent as it is: a
 * hot path with a large bytes field nested in a message (protobuf-es copies such a field once per level of
 * nesting). The caller answers for the bytes being a valid encoding of the message; pass it where the
 * message goes (`preEncoded(schema, bytes)` is typed as the message). `prefixFree`: the
 * `GRPC_FRAME_HEADER_BYTES` bytes before `bytes` in its buffer are the caller's and may be overwritten, so
 * the message is framed where it is, not copied.
 */
export function preEncoded<Desc extends DescMessage>(
  _schema: Desc,
  bytes: Uint8Array,
  options: { readonly prefixFree?: boolean } = {},
): MessageInitShape<Desc> {
  const prefixFree = options.prefixFree === true && bytes.byteOffset >= GRPC_FRAME_HEADER_BYTES;
  return { [PRE_ENCODED]: bytes, [PREFIX_FREE]: prefixFree } as unknown as MessageInitShape<Desc>;
}

function serializer(desc: DescMessage): (value: unknown) => Buffer {
  return (value) => {
    const v = value as { [PRE_ENCODED]?: Uint8Array; [PREFIX_FREE]?: boolean };
    const pre = v[PRE_ENCODED];
    if (pre !== undefined) {
      const out = asBuffer(pre);
      if (v[PREFIX_FREE] === true) (out as unknown as Record<symbol, boolean>)[FRAME_IN_PLACE] = true;
      return out;
    }
    return asBuffer(toBinary(desc, create(desc, value as MessageInitShape<DescMessage>)));
  };
}

function methodDefinition(service: DescService, m: DescMethod): grpc.MethodDefinition<unknown, unknown> {
  return {
    path: `/${service.typeName}/${m.name}`,
    requestStream: isStreamingRequest(m.methodKind),
    responseStream: isStreamingResponse(m.methodKind),
    requestSerialize: serializer(m.input),
    requestDeserialize: (bytes) => fromBinary(m.input, plainBytes(bytes)),
    responseSerialize: serializer(m.output),
    responseDeserialize: (bytes) => fromBinary(m.output, plainBytes(bytes)),
    originalName: m.localName,
  };
}

/** The grpc-js definition of a service (paths `/<package.Service>/<Method>`, protobuf-es serialization). */
export function serviceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) definition[m.localName] = methodDefinition(service, m);
  return definition;
}

/** What every kind of server call has, as far as the context needs it. */
interface AnyServerCall {
  readonly metadata: grpc.Metadata;
  getPeer(): string;
  getDeadline(): grpc.Deadline;
  getAuthContext(): AuthContext;
  on(event: "cancelled", listener: () => void): unknown;
  off(event: "cancelled", listener: () => void): unknown;
}

/** What grpc-js reports about the transport's authentication (not exported by name from grpc-js). */
export type AuthContext = ReturnType<grpc.ServerUnaryCall<unknown, unknown>["getAuthContext"]>;

function deadlineOf(call: AnyServerCall): Date | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? new Date(ms) : undefined;
}

/** A context whose signal aborts on cancel, deadline and shutdown; `done()` releases its timer and listeners. */
function createContext(
  service: DescService,
  method: DescMethod,
  call: AnyServerCall,
  shutdown: AbortSignal | undefined,
): { context: HandlerContext; done(): void } {
  const controller = new AbortController();
  const deadline = deadlineOf(call);
  const onCancel = () =>
    controller.abort(new RpcError(ErrorCategory.Cancelled, "the client cancelled the call"));
  const onShutdown = () =>
    controller.abort(new RpcError(ErrorCategory.Unavailable, "the server is shutting down"));
  call.on("cancelled", onCancel);
  if (shutdown?.aborted) onShutdown();
  else shutdown?.addEventListener("abort", onShutdown, { once: true });
  const timer =
    deadline === undefined
      ? undefined
      : setTimeout(
          () => controller.abort(new RpcError(ErrorCategory.Deadline, "the call's deadline passed")),
          Math.max(0, deadline.getTime() - Date.now()),
        );
  timer?.unref();
  const context: HandlerContext = {
    service,
    method,
    signal: controller.signal,
    deadline,
    metadata: call.metadata,
    peer: call.getPeer(),
    getAuthContext: () => call.getAuthContext(),
  };
  return {
    context,
    done() {
      if (timer) clearTimeout(timer);
      call.off("cancelled", onCancel);
      shutdown?.removeEventListener("abort", onShutdown);
    },
  };
}

function statusObject(err: unknown): Partial<grpc.StatusObject> {
  const { code, details } = toStatus(err);
  return { code, details };
}

/**
 * The requests of a client or bidi stream. Node's default stream iterator destroys the stream when the
 * requests end, which would also end the response side of a bidi call before its last responses went out.
 */
function requestsOf(
  call: grpc.ServerReadableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
) {
  return call.iterator({ destroyOnReturn: false });
}

/** Writes the responses to a server stream, waiting for drain; stops when the call is cancelled. */
async function writeAll(
  call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
  responses: AsyncIterable<unknown>,
  signal: AbortSignal,
): Promise<void> {
  for await (const response of responses) {
    signal.throwIfAborted();
    if (!call.write(response)) await once(call, "drain", { signal });
  }
}

/** The grpc-js definition and implementation of a service with typed handlers. */
export function adaptService<S extends DescService>(
  service: S,
  handlers: ServiceHandlers<S>,
  options: ServiceAdapterOptions = {},
): GrpcService {
  const implementation: grpc.UntypedServiceImplementation = {};
  const table = handlers as unknown as Record<string, (...args: never[]) => unknown>;
  for (const m of service.methods) {
    const handler = table[m.localName];
    if (typeof handler !== "function") throw new TypeError(`no handler for ${service.typeName}.${m.name}`);
    const begin = (call: AnyServerCall) => createContext(service, m, call, options.signal);
    /** The status for a failed call; the error goes to `onError` unless the client had gone (not a fault). */
    const fail = (
      err: unknown,
      context: HandlerContext | undefined,
      call: { readonly cancelled: boolean },
    ) => {
      if (context && !call.cancelled) options.onError?.(err, context);
      return statusObject(err);
    };
    switch (m.methodKind) {
      case "unary":
      case "client_streaming":
        implementation[m.localName] = (
          call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>,
          callback: grpc.sendUnaryData<unknown>,
        ) => {
          let scope: ReturnType<typeof begin> | undefined;
          void (async () => {
            scope = begin(call);
            options.authorize?.(scope.context);
            const input =
              m.methodKind === "unary"
                ? (call as grpc.ServerUnaryCall<unknown, unknown>).request
                : requestsOf(call as grpc.ServerReadableStream<unknown, unknown>);
            return await (handler as (input: unknown, context: HandlerContext) => unknown)(
              input,
              scope.context,
            );
          })().then(
            (response) => {
              scope?.done();
              callback(null, response);
            },
            (err: unknown) => {
              scope?.done();
              callback(fail(err, scope?.context, call));
            },
          );
        };
        break;
      case "server_streaming":
      case "bidi_streaming":
        implementation[m.localName] = (
          call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>,
        ) => {
          let scope: ReturnType<typeof begin> | undefined;
          void (async () => {
            scope = begin(call);
            options.authorize?.(scope.context);
            const input =
              m.methodKind === "server_streaming"
                ? (call as grpc.ServerWritableStream<unknown, unknown>).request
                : requestsOf(call as grpc.ServerDuplexStream<unknown, unknown>);
            const responses = (
              handler as (input: unknown, context: HandlerContext) => AsyncIterable<unknown>
            )(input, scope.context);
            await writeAll(call, responses, scope.context.signal);
          })().then(
            () => {
              scope?.done();
              call.end();
            },
            (err: unknown) => {
              scope?.done();
              const context = scope?.context;
              const status = fail(err, context, call);
              if (!call.cancelled) call.emit("error", status);
            },
          );
        };
        break;
    }
  }
  return { definition: serviceDefinition(service), implementation };
}

// ---- client ----

export interface CallOptions {
  /** Deadline of this call, in ms from now. Overrides the client's `defaultTimeoutMs`. */
  readonly timeoutMs?: number;
  /** An absolute deadline; wins over `timeoutMs`. */
  readonly deadline?: Date;
  readonly signal?: AbortSignal;
  readonly metadata?: grpc.Metadata;
}

export type UnaryClientMethod<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options?: CallOptions,
) => Promise<MessageShape<O>>;
export type ServerStreamingClientMethod<I extends DescMessage, O extends DescMessage> = (
  request: MessageInitShape<I>,
  options?: CallOptions,
) => AsyncIterable<MessageShape<O>>;
export type ClientStreamingClientMethod<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageInitShape<I>>,
  options?: CallOptions,
) => Promise<MessageShape<O>>;
export type BidiStreamingClientMethod<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageInitShape<I>>,
  options?: CallOptions,
) => AsyncIterable<MessageShape<O>>;

type ClientMethodOf<M> = M extends { methodKind: infer K; input: infer I; output: infer O }
  ? I extends DescMessage
    ? O extends DescMessage
      ? K extends "unary"
        ? UnaryClientMethod<I, O>
        : K extends "server_streaming"
          ? ServerStreamingClientMethod<I, O>
          : K extends "client_streaming"
            ? ClientStreamingClientMethod<I, O>
            : K extends "bidi_streaming"
              ? BidiStreamingClientMethod<I, O>
              : never
      : never
    : never
  : never;

/** A method per RPC (by local name), failing with `RpcError`; plus `close()` and `waitForReady()`. */
export type ServiceClient<S extends DescService> = {
  [K in keyof MethodOf<S>]: ClientMethodOf<MethodOf<S>[K]>;
} & {
  /** Closes the channel; calls in flight fail with CANCELLED or UNAVAILABLE. */
  close(): void;
  /** Resolves once the channel is connected; rejects with an `RpcError` (unavailable) at the deadline. */
  waitForReady(timeoutMs: number): Promise<void>;
};

export interface ClientOptions {
  readonly credentials: grpc.ChannelCredentials;
  /** Deadline of a call that sets none, in ms. Default: none for streams, 30 s for unary calls. */
  readonly defaultTimeoutMs?: number;
  readonly channelOptions?: grpc.ChannelOptions;
}

export const DEFAULT_UNARY_TIMEOUT_MS = 30_000;

/** Client keepalive: a ping every 30 s of an idle channel, the connection dropped after 10 s without reply. */
export const DEFAULT_CLIENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
};

function callDeadline(options: CallOptions | undefined, fallbackMs: number | undefined): grpc.Deadline {
  if (options?.deadline) return options.deadline;
  const ms = options?.timeoutMs ?? fallbackMs;
  return ms === undefined ? Number.POSITIVE_INFINITY : Date.now() + ms;
}

function linkCancel(signal: AbortSignal | undefined, call: grpc.Call): () => void {
  if (!signal) return () => {};
  const onAbort = () => call.cancel();
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });
  return () => signal.removeEventListener("abort", onAbort);
}

async function* readResponses<T>(
  stream: grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>,
  release: () => void,
): AsyncGenerator<T> {
  let finished = false;
  try {
    for await (const message of stream as AsyncIterable<T>) yield message;
    finished = true;
  } catch (err) {
    finished = true;
    throw fromStatus(err);
  } finally {
    release();
    if (!finished) stream.cancel(); // the consumer stopped early
  }
}

/**
 * Writes the caller's requests, waiting for drain. Stops (and stops pulling the source) once the call has
 * ended, e.g. cancelled or failed, so a producer is never left waiting for a drain that will not come.
 */
async function pumpRequests(
  stream: grpc.ClientWritableStream<unknown> | grpc.ClientDuplexStream<unknown, unknown>,
  requests: AsyncIterable<unknown>,
): Promise<void> {
  const ended = new AbortController();
  const onEnd = () => ended.abort();
  stream.once("status", onEnd);
  stream.once("error", onEnd);
  stream.once("close", onEnd);
  try {
    for await (const request of requests) {
      if (ended.signal.aborted) return;
      if (!stream.write(request)) await once(stream, "drain", { signal: ended.signal });
    }
    if (!ended.signal.aborted) stream.end();
  } catch {
    // The request source failed (or the call ended under it): cancel, so the caller sees CANCELLED.
    if (!ended.signal.aborted) stream.cancel();
  } finally {
    stream.off("status", onEnd);
    stream.off("error", onEnd);
    stream.off("close", onEnd);
  }
}

/** A typed client of a service at `address` (host:port). */
export function createClient<S extends DescService>(
  service: S,
  address: string,
  options: ClientOptions,
): ServiceClient<S> {
  const Client = grpc.makeGenericClientConstructor({}, service.typeName);
  const client = new Client(address, options.credentials, {
    ...DEFAULT_CLIENT_CHANNEL_OPTIONS,
    ...options.channelOptions,
  });
  const methods: Record<string, unknown> = {};
  for (const m of service.methods) {
    const def = methodDefinition(service, m);
    const serialize = def.requestSerialize;
    const deserialize = def.responseDeserialize;
    // Every call carries the caller's W3C trace context (`traceparent`), so the server's spans join its trace.
    const metadataOf = (o: CallOptions | undefined) => {
      const metadata = o?.metadata ?? new grpc.Metadata();
      injectMetadata(metadata);
      return metadata;
    };
    switch (m.methodKind) {
      case "unary":
        methods[m.localName] = (request: unknown, o?: CallOptions) =>
          new Promise((resolve, reject) => {
            const deadline = callDeadline(o, options.defaultTimeoutMs ?? DEFAULT_UNARY_TIMEOUT_MS);
            let release = () => {};
            const call = client.makeUnaryRequest(
              def.path,
              serialize,
              deserialize,
              request,
              metadataOf(o),
              { deadline },
              (err, response) => {
                release();
                if (err) reject(fromStatus(err));
                else resolve(response);
              },
            );
            release = linkCancel(o?.signal, call);
          });
        break;
      case "server_streaming":
        methods[m.localName] = (request: unknown, o?: CallOptions) => {
          const deadline = callDeadline(o, options.defaultTimeoutMs);
          const call = client.makeServerStreamRequest(
            def.path,
            serialize,
            deserialize,
            request,
            metadataOf(o),
            { deadline },
          );
          return readResponses(call, linkCancel(o?.signal, call));
        };
        break;
      case "client_streaming":
        methods[m.localName] = (requests: AsyncIterable<unknown>, o?: CallOptions) =>
          new Promise((resolve, reject) => {
            const deadline = callDeadline(o, options.defaultTimeoutMs);
            let release = () => {};
            const call = client.makeClientStreamRequest(
              def.path,
              serialize,
              deserialize,
              metadataOf(o),
              { deadline },
              (err, response) => {
                release();
                if (err) reject(fromStatus(err));
                else resolve(response);
              },
            );
            release = linkCancel(o?.signal, call);
            void pumpRequests(call, requests);
          });
        break;
      case "bidi_streaming":
        methods[m.localName] = (requests: AsyncIterable<unknown>, o?: CallOptions) => {
          const deadline = callDeadline(o, options.defaultTimeoutMs);
          const call = client.makeBidiStreamRequest(def.path, serialize, deserialize, metadataOf(o), {
            deadline,
          });
          const release = linkCancel(o?.signal, call);
          void pumpRequests(call, requests);
          return readResponses(call, release);
        };
        break;
    }
  }
  methods["close"] = () => client.close();
  methods["waitForReady"] = (timeoutMs: number) =>
    new Promise<void>((resolve, reject) => {
      client.waitForReady(Date.now() + timeoutMs, (err) => {
        if (err)
          reject(
            new RpcError(ErrorCategory.Unavailable, `${address} not ready: ${err.message}`, { cause: err }),
          );
        else resolve();
      });
    });
  return methods as ServiceClient<S>;
}
