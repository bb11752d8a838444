// Platform-neutral: encapsulation, the export policy, the tunnel output (no I/O of its own).
export type { AddressMapping, FlowRewrite, RemapRole } from "./address-remap.js";
export { AddressRemapper, RemapStats, rewriteFrame } from "./address-remap.js";
// Node adapters: sockets and files.
export type { CaptureFileOutputOptions } from "./capture-file-output.js";
export {
  CaptureFileOutput,
  createCaptureFileOutput,
  DEFAULT_WRITE_BUFFER_BYTES,
} from "./capture-file-output.js";
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
export { EgressError, EgressErrorCode, ExportPolicyError, isEgressError } from "./errors.js";
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
export type { NativeSender } from "./native-sender.js";
export { loadNativeSender } from "./native-sender.js";
export type { OpenEgressOptions, OpenedEgress } from "./open-egress.js";
export { captureFileOutput, DEFAULT_USER_APPLICATION, MIN_INNER_MTU, openEgress } from "./open-egress.js";
export { describeOutputReport } from "./output-report-lines.js";
export type { PcapOverIpServerOptions } from "./pcap-over-ip.js";
export {
  createPcapOverIpServer,
  DEFAULT_BLOCK_TIMEOUT_MS,
  DEFAULT_MAX_CLIENT_BUFFER_BYTES,
  PCAP_OVER_IP_PORT,
  PcapOverIpServer,
  SlowClientPolicy,
} from "./pcap-over-ip.js";
export type { ClosedCaptureFile, RotatingFileOutputOptions, UploadStore } from "./rotating-file-output.js";
export { createRotatingFileOutput, RotatingFileOutput } from "./rotating-file-output.js";
export { burstFor, Pacer, TokenBucket } from "./send-schedule.js";
export type { TunnelOutputOptions } from "./tunnel-output.js";
export { createTunnelOutput, DEFAULT_BATCH_BYTES, TunnelOutput } from "./tunnel-output.js";
export type { UdpTarget, UdpTransportOptions } from "./udp-transport.js";
export { createUdpTransport, DEFAULT_SOURCE_PORT_SLOTS, resolvePolicyAddresses } from "./udp-transport.js";
export type { VxlanHeader } from "./vxlan.js";
export {
  MAX_VNI,
  parseVxlan,
  VXLAN_HEADER_BYTES,
  VXLAN_PORT,
  vxlanHeader,
  writeVxlanHeader,
} from "./vxlan.js";
