// Internal and unsupported: helpers for tests of this package and its users (the CLI). Never imported by
// package code.
export type { FrameSpec, SentDatagram } from "./test-frames.js";
export { flowContext, frame, framesOf, ManualClock, MemoryTransport } from "./test-frames.js";
export type { PacketCapture, TunnelLab } from "./tunnel-lab.js";
export { createTunnelLab } from "./tunnel-lab.js";
