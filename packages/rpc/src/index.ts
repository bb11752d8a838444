export type { WireStatus } from "./errors.js";
export {
  ErrorCategory,
  errorCategory,
  fromStatus,
  INTERNAL_ERROR_MESSAGE,
  isErrorCategory,
  isRpcError,
  RpcError,
  toStatus,
} from "./errors.js";
export type { CheckHealthOptions, HealthRegistry } from "./health.js";
export { checkHealth, createHealthRegistry, HealthStatus, OVERALL_HEALTH } from "./health.js";
export { SERVICE_IDENTITIES, ServiceIdentity, SPIFFE_TRUST_DOMAIN, spiffeId } from "./identity.js";
export type { CreatePkiOptions } from "./pki.js";
export { caCertificatePath, certificatePath, createPki, privateKeyPath } from "./pki.js";
export type { RpcServer, RpcServerOptions, ServiceRegistration } from "./server.js";
export {
  createRpcServer,
  DEFAULT_SERVER_CHANNEL_OPTIONS,
  registerService,
  SERVER_FLOW_CONTROL_WINDOW,
} from "./server.js";
export type {
  AuthContext,
  BidiStreamingClientMethod,
  BidiStreamingHandler,
  CallOptions,
  ClientOptions,
  ClientStreamingClientMethod,
  ClientStreamingHandler,
  GrpcService,
  HandlerContext,
  ServerStreamingClientMethod,
  ServerStreamingHandler,
  ServiceAdapterOptions,
  ServiceClient,
  ServiceHandlers,
  UnaryClientMethod,
  UnaryHandler,
} from "./service-adapter.js";
export {
  adaptService,
  createClient,
  DEFAULT_CLIENT_CHANNEL_OPTIONS,
  DEFAULT_UNARY_TIMEOUT_MS,
  GRPC_FRAME_HEADER_BYTES,
  preEncoded,
  serviceDefinition,
} from "./service-adapter.js";
export type { AuthContextSource } from "./tls.js";
export {
  clientCredentials,
  expectServerIdentity,
  peerIdentity,
  requireIdentity,
  serverCredentials,
} from "./tls.js";
