/** PCAP-over-IP settings that plain configuration refers to (no sockets here). */
export const PCAP_OVER_IP_PORT = 57012;
export const DEFAULT_MAX_CLIENT_BUFFER_BYTES = 8 * 1024 * 1024;
export const DEFAULT_MAX_CLIENTS = 16;

/**
 * What happens to a client that does not keep up: `block` (the writer waits for it, up to
 * `blockTimeoutMs`, then the client is dropped and counted: nothing is lost while it reads; for one-shot
 * replays), `drop` (chunks it has no room for are skipped, counted) or `disconnect`; the last two never
 * slow the run (for continuous runs).
 */
export const SlowClientPolicy = { Block: "block", Drop: "drop", Disconnect: "disconnect" } as const;
export type SlowClientPolicy = (typeof SlowClientPolicy)[keyof typeof SlowClientPolicy];
/** How long a `block` writer waits for a client's buffer to drain before the client is dropped. */
export const DEFAULT_BLOCK_TIMEOUT_MS = 30_000;
