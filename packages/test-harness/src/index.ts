// Internal and unsupported: the tests' access to real peers and judges. Never imported by package code.
export type { CorpusCapture } from "./corpus.js";
export { corpusCaptures, corpusDir } from "./corpus.js";
export type { ManifestTcpView } from "./manifest.js";
export { assertTcpMatchesManifest } from "./manifest.js";
export type { NatsServer, NatsServerOptions } from "./nats-server.js";
export { startNatsServer } from "./nats-server.js";
export type { ExpertItem, FollowedStream, FollowOptions } from "./tshark.js";
export { byEndpoints, expertInfo, followStreams, tshark } from "./tshark.js";
