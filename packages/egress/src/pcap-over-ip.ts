/**
 * A PCAP-over-IP server (node adapter): each TCP client gets a classic pcap file header, then the packets as
 * they are made, for Arkime, NetworkMiner, Zeek, `tshark -i TCP@host:port` and `nc host port | ...`.
 *
 * Packets go out in chunks of whole records, so a client that connects mid-run starts at a record boundary,
 * and a chunk a client has no room for is dropped whole: its stream stays a valid pcap with fewer packets.
 * Each client has a bounded buffer (`maxClientBufferBytes`); a client that does not keep up is either
 * waited for (`slowClient: "block"`: `write` returns a promise that settles once every client's buffer is
 * under the bound again, or after `blockTimeoutMs`, when the clients still full are dropped and counted:
 * a one-shot replay loses nothing while its readers read), skipped chunk by chunk (`"drop"`, counted) or
 * disconnected (`"disconnect"`). With `drop` and `disconnect` writing never waits for a client, so a slow
 * or stalled reader never slows the run or the other outputs.
 *
 * Chunks are flushed at every drain (a live stream favours latency over full chunks). Default bind address
 * is loopback: a decrypted stream must be exposed on purpose ("0.0.0.0:57012").
 */
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import type { CaptureEncoder } from "@cloudtap/pcap";
import { CaptureFormat, createCaptureEncoder } from "./capture-format.js";
import type { EgressOutput, OutputReport } from "./egress-output.js";
import { EgressError, EgressErrorCode } from "./errors.js";
import {
  DEFAULT_BLOCK_TIMEOUT_MS,
  DEFAULT_MAX_CLIENT_BUFFER_BYTES,
  DEFAULT_MAX_CLIENTS,
  PCAP_OVER_IP_PORT,
  SlowClientPolicy,
} from "./pcap-over-ip-policy.js";

export {
  DEFAULT_BLOCK_TIMEOUT_MS,
  DEFAULT_MAX_CLIENT_BUFFER_BYTES,
  DEFAULT_MAX_CLIENTS,
  PCAP_OVER_IP_PORT,
  SlowClientPolicy,
};

export interface PcapOverIpServerOptions {
  /** Default "127.0.0.1". */
  readonly host?: string;
  /** Default 57012; 0 picks a free port (see `address`). */
  readonly port?: number;
  /** Default "drop". */
  readonly slowClient?: SlowClientPolicy;
  /** `block`: how long a write waits for a full client before dropping it. Default 30 s. */
  readonly blockTimeoutMs?: number;
  readonly maxClientBufferBytes?: number;
  readonly maxClients?: number;
  /**
   * Default "microsecond", the form every PCAP-over-IP reader accepts; "nanosecond" writes the
   * nanosecond pcap magic (a1b23c4d), which tshark and Wireshark read.
   */
  readonly resolution?: "microsecond" | "nanosecond";
  readonly snapLength?: number;
  /** Default 64 KiB. */
  readonly chunkBytes?: number;
  /** How long `close()` lets clients take what is queued for them before cutting them off; default 5000. */
  readonly closeTimeoutMs?: number;
}

class Client {
  packets = 0;
  bytes = 0;
  droppedPackets = 0;
  droppedChunks = 0;
  constructor(
    readonly id: number,
    readonly socket: Socket,
    readonly remote: string,
  ) {}
}

/** Records in a chunk of classic pcap records (16-byte headers, captured length at offset 8, little-endian). */
function countRecords(chunk: Uint8Array): number {
  const v = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  let n = 0;
  for (let at = 0; at + 16 <= chunk.length; at += 16 + v.getUint32(at + 8, true)) n++;
  return n;
}

export class PcapOverIpServer implements EgressOutput {
  readonly kind = "pcap-over-ip";
  readonly name: string;
  private readonly encoder: CaptureEncoder;
  private readonly header: Uint8Array;
  private readonly clients = new Map<number, Client>();
  private readonly gone: Client[] = [];
  private readonly clientWaiters: { n: number; resolve: () => void }[] = [];
  private nextId = 1;
  private done = false;
  private readonly slowClient: SlowClientPolicy;
  private readonly maxBuffer: number;
  private readonly maxClients: number;

  clientsAccepted = 0;
  clientsRefused = 0;
  clientsDisconnectedSlow = 0;
  /** `block`: clients dropped because their buffer did not drain within `blockTimeoutMs`. */
  clientsDroppedBlocked = 0;
  /** `block`: writes that waited for a client, and how long in all (ms). */
  blockedWrites = 0;
  blockedMs = 0;
  clientErrors = 0;
  serverErrors = 0;
  packets = 0;
  /** Packets made while no client was connected. */
  packetsWithoutClients = 0;
  /** Totals over every client (connected or gone). */
  droppedPackets = 0;
  droppedChunks = 0;

  private constructor(
    private readonly server: Server,
    readonly address: { readonly host: string; readonly port: number },
    private readonly options: PcapOverIpServerOptions,
  ) {
    this.name = `pcap-over-ip:${address.host.includes(":") ? `[${address.host}]` : address.host}:${address.port}`;
    this.slowClient = options.slowClient ?? SlowClientPolicy.Drop;
    this.maxBuffer = options.maxClientBufferBytes ?? DEFAULT_MAX_CLIENT_BUFFER_BYTES;
    this.maxClients = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.encoder = createCaptureEncoder({
      format: CaptureFormat.Pcap,
      resolution: options.resolution ?? "microsecond",
      chunkBytes: options.chunkBytes ?? 64 * 1024,
      ...(options.snapLength === undefined ? {} : { snapLength: options.snapLength }),
    });
    // The encoder's first bytes are the file header: every client gets its own copy on connecting.
    this.header = Uint8Array.from(this.encoder.flush()[0]!);
    server.on("connection", (socket) => this.accept(socket));
    server.on("error", () => {
      this.serverErrors++;
    });
  }

  static async listen(options: PcapOverIpServerOptions = {}): Promise<PcapOverIpServer> {
    const host = options.host ?? "127.0.0.1";
    const port = options.port ?? PCAP_OVER_IP_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new EgressError(EgressErrorCode.BadOption, `PCAP-over-IP port ${port} is not in 0..65535`);
    }
    for (const [k, v, min] of [
      ["maxClientBufferBytes", options.maxClientBufferBytes, 64 * 1024],
      ["maxClients", options.maxClients, 1],
      ["chunkBytes", options.chunkBytes, 4096],
    ] as const) {
      if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) {
        throw new EgressError(EgressErrorCode.BadOption, `PCAP-over-IP ${k} ${v} is below ${min}`);
      }
    }
    const server = createServer();
    try {
      server.listen({ host, port });
      await once(server, "listening");
    } catch (err) {
      throw new EgressError(
        EgressErrorCode.OpenFailed,
        `PCAP-over-IP cannot listen on ${host}:${port}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const a = server.address();
    const bound = typeof a === "object" && a !== null ? a.port : port;
    return new PcapOverIpServer(server, { host, port: bound }, options);
  }

  private accept(socket: Socket): void {
    if (this.done || this.clients.size >= this.maxClients) {
      this.clientsRefused++;
      socket.destroy();
      return;
    }
    const client = new Client(this.nextId++, socket, `${socket.remoteAddress}:${socket.remotePort}`);
    this.clients.set(client.id, client);
    this.clientsAccepted++;
    socket.setNoDelay(true);
    socket.on("error", () => {
      this.clientErrors++;
    });
    socket.on("close", () => {
      this.clients.delete(client.id);
      this.gone.push(client);
      // The report keeps the last clients that left, not all of them.
      if (this.gone.length > 64) this.gone.shift();
    });
    // Whatever a client sends is not for us; read and discard it so its writes never block.
    socket.on("data", () => {});
    socket.write(this.header);
    for (const w of this.clientWaiters.filter((x) => this.clients.size >= x.n)) {
      this.clientWaiters.splice(this.clientWaiters.indexOf(w), 1);
      w.resolve();
    }
  }

  /** Connected clients. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Resolves once `n` clients are connected (a one-shot run waits for its readers before it starts). */
  waitForClients(n: number, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
    if (n > this.maxClients)
      return Promise.reject(
        new EgressError(
          EgressErrorCode.BadOption,
          `cannot wait for ${n} clients: the server accepts at most ${this.maxClients} (maxClients)`,
        ),
      );
    if (this.clients.size >= n) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        n,
        resolve: () => {
          clearTimeout(timer);
          options.signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const fail = (why: string) => {
        const at = this.clientWaiters.indexOf(waiter);
        if (at >= 0) this.clientWaiters.splice(at, 1);
        reject(new EgressError(EgressErrorCode.OpenFailed, why));
      };
      const onAbort = () => fail(`waiting for PCAP-over-IP clients on ${this.name}: aborted`);
      const timer =
        options.timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                fail(
                  `${this.clients.size} of ${n} PCAP-over-IP clients connected to ${this.name} in ${options.timeoutMs} ms`,
                ),
              options.timeoutMs,
            );
      options.signal?.addEventListener("abort", onAbort, { once: true });
      this.clientWaiters.push(waiter);
    });
  }

  begin(length: number): Uint8Array {
    return this.encoder.begin(length);
  }

  beginAt(length: number): number {
    return this.encoder.beginAt(length);
  }

  get buffer(): Uint8Array {
    return this.encoder.buffer;
  }

  commit(timestampNs: bigint, offsetNs?: number, originalLength?: number): void {
    this.encoder.commit(timestampNs, offsetNs, originalLength);
    this.packets++;
  }

  drain(): Uint8Array[] {
    return this.encoder.flush();
  }

  flush(): Uint8Array[] {
    return this.encoder.flush();
  }

  write(chunk: Uint8Array): void | Promise<void> {
    if (this.clients.size === 0) {
      this.packetsWithoutClients += countRecords(chunk);
      return;
    }
    let records = -1;
    let full: Client[] | undefined;
    for (const c of this.clients.values()) {
      const socket = c.socket;
      if (socket.destroyed || !socket.writable) continue;
      if (this.slowClient === SlowClientPolicy.Block) {
        // Every chunk is queued; the writer then waits while a client holds more than its bound.
        if (records < 0) records = countRecords(chunk);
        socket.write(chunk);
        c.packets += records;
        c.bytes += chunk.length;
        if (socket.writableLength > this.maxBuffer) {
          full ??= [];
          full.push(c);
        }
        continue;
      }
      if (socket.writableLength + chunk.length > this.maxBuffer) {
        if (records < 0) records = countRecords(chunk);
        if (this.slowClient === SlowClientPolicy.Disconnect) {
          this.clientsDisconnectedSlow++;
          this.droppedPackets += records;
          socket.destroy();
          continue;
        }
        c.droppedPackets += records;
        c.droppedChunks++;
        this.droppedPackets += records;
        this.droppedChunks++;
        continue;
      }
      if (records < 0) records = countRecords(chunk);
      socket.write(chunk);
      c.packets += records;
      c.bytes += chunk.length;
    }
    if (full) return this.waitFor(full);
  }

  /** `block`: waits until each of `full` has drained under the bound, closed, or timed out (then dropped). */
  private async waitFor(full: readonly Client[]): Promise<void> {
    this.blockedWrites++;
    const started = Date.now();
    const timeoutMs = this.options.blockTimeoutMs ?? DEFAULT_BLOCK_TIMEOUT_MS;
    await Promise.all(
      full.map(
        (c) =>
          new Promise<void>((resolve) => {
            const socket = c.socket;
            const check = () => {
              if (socket.destroyed || socket.writableLength <= this.maxBuffer) finish();
            };
            const timer = setTimeout(() => {
              // Everything still queued for it is lost with it: counted as dropped.
              this.clientsDroppedBlocked++;
              socket.destroy();
              finish();
            }, timeoutMs);
            const finish = () => {
              clearTimeout(timer);
              socket.off("drain", check);
              socket.off("close", check);
              resolve();
            };
            socket.on("drain", check);
            socket.on("close", check);
            check();
          }),
      ),
    );
    this.blockedMs += Date.now() - started;
  }

  async close(): Promise<void> {
    if (this.done) return;
    for (const c of this.flush()) this.write(c);
    this.done = true;
    for (const w of this.clientWaiters.splice(0)) w.resolve();
    const timeout = this.options.closeTimeoutMs ?? 5000;
    await Promise.all(
      [...this.clients.values()].map(async (c) => {
        const closed = once(c.socket, "close").then(() => undefined);
        c.socket.end();
        const timer = new Promise<void>((resolve) => setTimeout(resolve, timeout).unref());
        await Promise.race([closed, timer]);
        c.socket.destroy();
      }),
    );
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    for (const c of this.clients.values()) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  report(): OutputReport {
    return {
      name: this.name,
      kind: this.kind,
      packets: this.packets,
      packetsWithoutClients: this.packetsWithoutClients,
      clientsAccepted: this.clientsAccepted,
      clientsRefused: this.clientsRefused,
      clientsDisconnectedSlow: this.clientsDisconnectedSlow,
      clientsDroppedBlocked: this.clientsDroppedBlocked,
      blockedWrites: this.blockedWrites,
      blockedMs: this.blockedMs,
      clientErrors: this.clientErrors,
      serverErrors: this.serverErrors,
      droppedPackets: this.droppedPackets,
      droppedChunks: this.droppedChunks,
      clients: [...this.gone, ...this.clients.values()].map((c) => ({
        remote: c.remote,
        connected: this.clients.has(c.id),
        /** Bytes queued for the client in this process (bounded by maxClientBufferBytes). */
        buffered: c.socket.writableLength,
        packets: c.packets,
        bytes: c.bytes,
        droppedPackets: c.droppedPackets,
        droppedChunks: c.droppedChunks,
      })),
    };
  }
}

export function createPcapOverIpServer(options: PcapOverIpServerOptions = {}): Promise<PcapOverIpServer> {
  return PcapOverIpServer.listen(options);
}
