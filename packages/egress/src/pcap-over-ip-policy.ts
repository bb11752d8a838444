/** PCAP-over-IP settings that plain configuration refers to (no sockets here). */
export const PCAP_OVER_IP_PORT = 57012;
export const DEFAULT_MAX_CLIENT_BUFFER_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_CLIENTS = 16;

export const SlowClientPolicy = { Drop: "drop", Disconnect: "disconnect" } as const;
export type SlowClientPolicy = (typeof SlowClientPolicy)[keyof typeof SlowClientPolicy];
