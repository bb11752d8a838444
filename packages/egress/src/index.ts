// The platform-neutral part of egress: encapsulation (VXLAN, GENEVE), the export policy, address remapping,
// the flow hash, datagram batching, send scheduling, the tunnel output, capture-file encoding and the fan-out.
// Importing it loads no node:* module, directly or through the packages it imports; the Node adapters
// (sockets, files, the PCAP-over-IP server, the native sender, openEgress) are the "./node" entry (node.ts).
// packages/test-harness/src/core-neutrality.test.ts follows this file's imports to hold it so.
export type { AddressMapping, FlowRewrite, RemapRole } from "./address-remap.js";
export { AddressRemapper, RemapStats, rewriteFrame } from "./address-remap.js";
export type { CaptureEncoderSettings } from "./capture-format.js";
export { CaptureFormat, createCaptureEncoder, isPcapngEncoder } from "./capture-format.js";
export type { EgressClock } from "./clock.js";
export { systemClock } from "./clock.js";
export type { DatagramTransport, TransportTargetStats } from "./datagram-batch.js";
export { DatagramBatch, emptyTransportStats } from "./datagram-batch.js";
export type { Egress, EgressReport } from "./egress.js";
export { createEgress } from "./egress.js";
export type { EgressOutput, OutputReport } from "./egress-output.js";
export type {
  CaptureFileSpec,
  CheckedEgressSpec,
  EgressSpec,
  PcapOverIpSpec,
  RotatingFilesSpec,
} from "./egress-spec.js";
export { checkEgressSpec, EgressSpecError, parseListenAddress, parseTunnelTarget } from "./egress-spec.js";
export {
  EgressError,
  EgressErrorCode,
  ExportPolicyError,
  isEgressError,
  RefusedAttributeError,
} from "./errors.js";
export type {
  ExportDecision,
  ExportPolicy,
  ExportPolicySpec,
  ExportRoute,
  ExportRule,
  ExportRuleSpec,
  Pacing,
  PacingSpec,
  RemapConfig,
  RemapSpec,
  TargetRef,
  TunnelTarget,
  TunnelTargetSpec,
} from "./export-policy.js";
export {
  addressFamily,
  createExportPolicy,
  DEFAULT_MAX_QUEUE_BYTES,
  DEFAULT_TARGET_MTU,
  DEFAULT_VNI,
  encapsulationBytesFor,
  innerIpMtu,
  OverLimitPolicy,
  OversizePolicy,
  parseExportPolicy,
  resolveExportPolicy,
  TunnelKind,
  tunnelHeaderBound,
  tunnelOverheadBytes,
} from "./export-policy.js";
export { endpointPairHash, flowHash } from "./flow-hash.js";
export type { FlowCondition } from "./flow-match.js";
export { cidrMatcher, FlowMatchSyntaxError, parseFlowMatch } from "./flow-match.js";
export { frameFlowContext } from "./frame-flow.js";
export type {
  GeneveOptionsConfig,
  GeneveOptionsEncoding,
  ParsedGeneve,
  ParsedGeneveOption,
} from "./geneve.js";
export {
  CLOUDTAP_GENEVE_OPTION_CLASS,
  DEFAULT_GENEVE_MAX_OPTION_BYTES,
  DEFAULT_GENEVE_OPTIONS,
  encodeGeneveOptions,
  GENEVE_BASE_HEADER_BYTES,
  GENEVE_MAX_OPTION_BYTES,
  GENEVE_PORT,
  GENEVE_PROTOCOL_ETHERNET,
  GeneveOption,
  GeneveOptionType,
  geneveHeader,
  geneveOptionsConfig,
  parseGeneve,
  writeGeneveHeader,
} from "./geneve.js";
export { describeOutputReport } from "./output-report-lines.js";
export {
  DEFAULT_BLOCK_TIMEOUT_MS,
  DEFAULT_MAX_CLIENT_BUFFER_BYTES,
  DEFAULT_MAX_CLIENTS,
  PCAP_OVER_IP_PORT,
  SlowClientPolicy,
} from "./pcap-over-ip-policy.js";
export { burstFor, Pacer, TokenBucket } from "./send-schedule.js";
export type { SinkCounters } from "./sink-counters.js";
export { sinkCountersOf } from "./sink-counters.js";
export type { TunnelOutputOptions } from "./tunnel-output.js";
export { createTunnelOutput, DEFAULT_BATCH_BYTES, TunnelOutput } from "./tunnel-output.js";
export type { VxlanHeader } from "./vxlan.js";
export {
  MAX_VNI,
  parseVxlan,
  VXLAN_HEADER_BYTES,
  VXLAN_PORT,
  vxlanHeader,
  writeVxlanHeader,
} from "./vxlan.js";
