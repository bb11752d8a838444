// The Node adapters of egress ("@cloudtap/egress/node"): UDP sockets (and the native sendmmsg/GSO sender),
// capture files, rotating files with upload, the PCAP-over-IP server, and openEgress, which builds all of them
// from one EgressSpec. What they share with the platform-neutral part (the EgressOutput contract, the policy,
// encapsulation, encoders) is imported from "@cloudtap/egress" itself (index.ts); this entry repeats none of it.
export type { CaptureFileOutputOptions } from "./capture-file-output.js";
export {
  CaptureFileOutput,
  createCaptureFileOutput,
  DEFAULT_WRITE_BUFFER_BYTES,
} from "./capture-file-output.js";
export type { NativeSender } from "./native-sender.js";
export { loadNativeSender } from "./native-sender.js";
export type { OpenEgressOptions, OpenedEgress } from "./open-egress.js";
export { captureFileOutput, DEFAULT_USER_APPLICATION, MIN_INNER_MTU, openEgress } from "./open-egress.js";
export type { PcapOverIpServerOptions } from "./pcap-over-ip.js";
export { createPcapOverIpServer, PcapOverIpServer } from "./pcap-over-ip.js";
export type { ClosedCaptureFile, RotatingFileOutputOptions, UploadStore } from "./rotating-file-output.js";
export { createRotatingFileOutput, RotatingFileOutput } from "./rotating-file-output.js";
export type { UdpTarget, UdpTransportOptions } from "./udp-transport.js";
export { createUdpTransport, DEFAULT_SOURCE_PORT_SLOTS, resolvePolicyAddresses } from "./udp-transport.js";
