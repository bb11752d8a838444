// The generated protobuf-es code of proto/ (regenerate with `pnpm gen`; never edit gen/ by hand).
export * from "./gen/cloudtap/keys/v1/keys_pb.js";
export * from "./gen/cloudtap/mirror/v1/mirror_pb.js";
export * from "./gen/cloudtap/replay/v1/replay_pb.js";
export * from "./gen/cloudtap/status/v1/status_pb.js";
export * from "./gen/grpc/health/v1/health_pb.js";
