export type { BlobWindow } from "./blob-listing.js";
export { DEFAULT_LOOKBACK_NS, listBlobs, sortBlobsByTime } from "./blob-listing.js";
export type { Endpoints, LinkOptions } from "./frame-writer.js";
export { clientMacFor, DEFAULT_GATEWAY_MAC, FlowTemplates } from "./frame-writer.js";
export type {
  BlobProblem,
  BlobSource,
  ChunkedOutput,
  OutputSink,
  StitchJobOptions,
  StitchJobReport,
  StitchProgress,
} from "./stitch-job.js";
export { runStitchJob } from "./stitch-job.js";
export type { FlowIdentity, StitchedFlow, StitcherOptions } from "./stitcher.js";
export {
  DEFAULT_MAX_HELD_BYTES_PER_FLOW,
  DEFAULT_MTU,
  DEFAULT_REORDER_WINDOW_NS,
  Stitcher,
  StitcherStats,
} from "./stitcher.js";
export type { TcpHandshakeOptions, TcpSynthOptions } from "./tcp-synth.js";
export { TcpFlags, TcpSynth, TcpSynthStats } from "./tcp-synth.js";
export type { UdpSynthOptions } from "./udp-synth.js";
export { UdpSynth, UdpSynthStats } from "./udp-synth.js";
