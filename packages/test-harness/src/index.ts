// Internal and unsupported: the tests' access to real peers and judges. Never imported by package code.

export type {
  Azurite,
  AzuriteAccount,
  AzuriteOptions,
  EmulatorProcess,
  S3KeyPair,
  S3rver,
  S3rverOptions,
} from "./cloud-servers.js";
export {
  azuriteContainerSas,
  createAzuriteContainer,
  freePort,
  startAzurite,
  startS3rver,
} from "./cloud-servers.js";
export { CLOUDTAP_BIN } from "./cloudtap-command.js";
export type { CorpusCapture } from "./corpus.js";
export { corpusCaptures, corpusDir } from "./corpus.js";
export type { FaultProxy } from "./fault-proxy.js";
export { startFaultProxy } from "./fault-proxy.js";
export type { GcsGrant, GcsServiceAccountKey, GcsStandIn } from "./gcs-stand-in.js";
export { crc32c, startGcsStandIn } from "./gcs-stand-in.js";
export type { ManifestTcpView } from "./manifest.js";
export { assertTcpMatchesManifest } from "./manifest.js";
export type { NatsServer, NatsServerOptions } from "./nats-server.js";
export { startNatsServer } from "./nats-server.js";
export type { ExpertItem, FollowedStream, FollowOptions } from "./tshark.js";
export { byEndpoints, expertInfo, followStreams, tshark } from "./tshark.js";
