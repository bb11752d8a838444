/**
 * The tapper's vantage point: relays between the simulated clients and servers, and hands every byte to the
 * connection's tap on its way through, exactly as it left the sending host, per direction. The relay finds the
 * connection by the client's source address (each connection binds its own loopback address), and binds its
 * upstream socket to that same address so the server can find the plan the same way.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from "node:dgram";
import { connect, createServer, type Server, type Socket } from "node:net";
import { CloseInitiator, CloseReason, Direction } from "@cloudtap/tap-format";
import type { ConnectionTap } from "./connection-tap.js";

export interface RelayTarget {
  readonly tap: ConnectionTap;
  /** The loopback address of the connection (its client's source address). */
  readonly loopbackAddress: string;
  /** Where the real server listens on 127.0.0.1. */
  readonly upstreamPort: number;
  /** Told once the relay has finished with the connection (both sides closed), or failed. */
  settle(error?: Error): void;
}

export type RelayLookup = (address: string | undefined) => RelayTarget | undefined;

export interface TcpRelay {
  readonly port: number;
  /** Connections accepted whose source address was not registered (always 0 unless something is amiss). */
  readonly strangers: number;
  close(): Promise<void>;
}

function isReset(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === "ECONNRESET" || code === "EPIPE";
}

/** Starts the TCP relay on 127.0.0.1. */
export async function createTcpRelay(lookup: RelayLookup): Promise<TcpRelay> {
  const sockets = new Set<Socket>();
  let strangers = 0;
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const target = lookup(client.remoteAddress);
    if (!target) {
      strangers++;
      client.destroy();
      return;
    }
    relayConnection(client, target, sockets);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("TCP relay has no port");
  return {
    port: address.port,
    get strangers() {
      return strangers;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function relayConnection(client: Socket, target: RelayTarget, sockets: Set<Socket>): void {
  const { tap } = target;
  tap.open();
  const upstream = connect({
    host: "127.0.0.1",
    port: target.upstreamPort,
    localAddress: target.loopbackAddress,
    allowHalfOpen: true,
  });
  sockets.add(client);
  sockets.add(upstream);
  client.setNoDelay(true);
  upstream.setNoDelay(true);

  let firstFin: CloseInitiator | undefined;
  let reset: CloseInitiator | undefined;
  let failure: Error | undefined;
  let open = 2;

  const finish = () => {
    if (--open > 0) return;
    sockets.delete(client);
    sockets.delete(upstream);
    if (failure === undefined && tap.isOpen) {
      if (reset !== undefined) tap.close(CloseReason.Rst, reset);
      else tap.close(CloseReason.Fin, firstFin ?? CloseInitiator.Unknown);
    }
    target.settle(failure);
  };

  const onError = (side: CloseInitiator, other: Socket) => (err: Error) => {
    if (isReset(err)) {
      reset ??= side;
      // Pass the reset on, as the network would: the other host sees an RST too.
      if (!other.destroyed) other.resetAndDestroy();
    } else {
      failure ??= err;
      other.destroy();
    }
  };

  upstream.once("connect", () => {
    client.resume();
  });
  // A tap that refuses bytes is a bug: fail the connection rather than the process.
  const record = (direction: Direction, chunk: Buffer): boolean => {
    try {
      tap.data(direction, chunk);
      return true;
    } catch (err) {
      failure ??= err instanceof Error ? err : new Error(String(err));
      client.destroy();
      upstream.destroy();
      return false;
    }
  };
  client.on("data", (chunk: Buffer) => {
    if (record(Direction.ClientToServer, chunk) && !upstream.write(chunk)) client.pause();
  });
  upstream.on("drain", () => client.resume());
  upstream.on("data", (chunk: Buffer) => {
    if (record(Direction.ServerToClient, chunk) && !client.write(chunk)) upstream.pause();
  });
  client.on("drain", () => upstream.resume());
  client.on("end", () => {
    firstFin ??= CloseInitiator.Client;
    upstream.end();
  });
  upstream.on("end", () => {
    firstFin ??= CloseInitiator.Server;
    client.end();
  });
  client.on("error", onError(CloseInitiator.Client, upstream));
  upstream.on("error", onError(CloseInitiator.Server, client));
  client.on("close", finish);
  upstream.on("close", finish);
}

export interface UdpRelay {
  readonly port: number;
  /** Datagrams dropped because no live flow was registered for their source address. */
  readonly strays: number;
  /** Ends the flow of `address` (its tap closes at the tapper's idle timeout) and frees its upstream socket. */
  endFlow(address: string): void;
  close(): Promise<void>;
}

/** Starts the UDP relay on 127.0.0.1: one upstream socket per client address, as a NAT-like flow table. */
export async function createUdpRelay(lookup: RelayLookup): Promise<UdpRelay> {
  interface Flow {
    readonly socket: UdpSocket;
    readonly target: RelayTarget;
    readonly client: RemoteInfo;
    /** Datagrams that arrived before the upstream socket was bound, in order. */
    pending: Buffer[] | undefined;
  }
  const flows = new Map<string, Flow>();
  let strays = 0;
  const relay = createSocket("udp4");
  // A tap that refuses a datagram is a bug: fail the connection rather than the process.
  const record = (flow: Flow, direction: Direction, msg: Buffer): boolean => {
    try {
      flow.target.tap.datagram(direction, msg);
      return true;
    } catch (err) {
      flow.target.settle(err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  };
  const forward = (flow: Flow, msg: Buffer) => {
    if (record(flow, Direction.ClientToServer, msg))
      flow.socket.send(msg, flow.target.upstreamPort, "127.0.0.1");
  };
  relay.on("message", (msg, rinfo) => {
    const existing = flows.get(rinfo.address);
    if (existing) {
      if (existing.pending) existing.pending.push(msg);
      else forward(existing, msg);
      return;
    }
    const target = lookup(rinfo.address);
    // Unknown senders, and flows that already ended (a datagram after the idle timeout would be a new flow,
    // which the simulation never plans), are dropped.
    if (!target || target.tap.opened) {
      strays++;
      return;
    }
    const flow: Flow = { socket: createSocket("udp4"), target, client: rinfo, pending: [msg] };
    flows.set(rinfo.address, flow);
    target.tap.open();
    flow.socket.on("message", (reply) => {
      if (!flow.target.tap.isOpen) return;
      if (record(flow, Direction.ServerToClient, reply))
        relay.send(reply, flow.client.port, flow.client.address);
    });
    flow.socket.on("error", (err) => flow.target.settle(err));
    flow.socket.bind(0, target.loopbackAddress, () => {
      const queued = flow.pending ?? [];
      flow.pending = undefined;
      for (const m of queued) forward(flow, m);
    });
  });
  await new Promise<void>((resolve, reject) => {
    relay.once("error", reject);
    relay.bind(0, "127.0.0.1", () => {
      relay.off("error", reject);
      resolve();
    });
  });
  return {
    port: relay.address().port,
    get strays() {
      return strays;
    },
    endFlow(address) {
      const flow = flows.get(address);
      if (!flow) return;
      flows.delete(address);
      if (flow.target.tap.isOpen) flow.target.tap.close(CloseReason.Timeout, CloseInitiator.Unknown);
      flow.socket.close(() => flow.target.settle());
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const f of flows.values()) f.socket.close();
        flows.clear();
        relay.close(() => resolve());
      }),
  };
}
