export type { BackoffPolicy } from "./backoff.js";
export { backoffDelayMs, sleep } from "./backoff.js";
export type { Bus, BusEvent, ConnectBusOptions } from "./connect.js";
export { connectBus } from "./connect.js";
export type {
  BusMessage,
  ConsumeOptions,
  ConsumerPending,
  EnsureConsumerOptions,
  MessageStream,
} from "./consumer.js";
export { consumeMessages, consumerPending, ensureConsumer, firstUnacked } from "./consumer.js";
export {
  BusAbortedError,
  BusError,
  BusErrorCategory,
  BusErrorCode,
  InvalidBusNameError,
  isBusError,
  isStreamFull,
  PublishFailedError,
  StreamFullError,
  StreamRetentionMismatchError,
} from "./errors.js";
export type { MsgHdrs, TraceContext } from "./headers.js";
export {
  formatTraceParent,
  getHeader,
  getTraceContext,
  MeshHeader,
  makeHeaders,
  parseTraceParent,
  setTraceContext,
} from "./headers.js";
export type { EnsureKvOptions, KV } from "./kv.js";
export { ensureKv, getJson, putJson } from "./kv.js";
export type { PublishOptions, PublishResult } from "./publish.js";
export { DEFAULT_PUBLISH_ATTEMPTS, publishWithId } from "./publish.js";
export type { EnsureStreamsOptions } from "./streams.js";
export { DEFAULT_DUPLICATE_WINDOW_MS, ensureStream, ensureStreams, removeRun } from "./streams.js";
export {
  BucketName,
  blobSubject,
  checkRun,
  chunkSubject,
  fetcherConsumer,
  LIVE_RUN,
  StreamName,
  stitcherConsumer,
} from "./subjects.js";
