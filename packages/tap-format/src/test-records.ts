/** Sample records shared by the tap-format tests and the golden-blob generator. */
import {
  CloseInitiator,
  CloseReason,
  type ConnOpenRecord,
  Direction,
  type TapRecord,
  Transport,
} from "./records.js";

export const SAMPLE_CONN_V4: ConnOpenRecord = {
  type: "conn-open",
  connId: "0123456789abcdef0123456789abcdef",
  timestampNs: 1_764_000_000_000_000_000n,
  transport: Transport.Tcp,
  ipVersion: 4,
  client: { address: "10.20.30.40", port: 51234 },
  server: { address: "203.0.113.7", port: 443 },
  midstream: false,
  tcp: {
    clientMss: 1460,
    serverMss: 1400,
    clientWindowScale: 7,
    serverWindowScale: 9,
    sackPermitted: true,
    clientIsn: 0xdeadbeef,
    serverIsn: 1,
  },
  attributes: {
    user: "alice@example.com",
    tenant: "acme",
    app: "Slack",
    policy: "tap-all",
    device: "LT-0042",
  },
};

export const SAMPLE_CONN_V6: ConnOpenRecord = {
  type: "conn-open",
  connId: "fedcba9876543210fedcba9876543210",
  timestampNs: 1_764_000_000_500_000_000n,
  transport: Transport.Udp,
  ipVersion: 6,
  client: { address: "fd00:1:2::42", port: 40000 },
  server: { address: "2001:db8::53", port: 53 },
  midstream: true,
  tcp: {},
  attributes: {},
};

export function sampleRecords(): TapRecord[] {
  const enc = new TextEncoder();
  return [
    SAMPLE_CONN_V4,
    {
      type: "data",
      connId: SAMPLE_CONN_V4.connId,
      direction: Direction.ClientToServer,
      offset: 0,
      timestampNs: SAMPLE_CONN_V4.timestampNs + 1_000_000n,
      spanNs: 250,
      payload: enc.encode("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    },
    SAMPLE_CONN_V6,
    {
      type: "datagram",
      connId: SAMPLE_CONN_V6.connId,
      direction: Direction.ServerToClient,
      index: 3,
      timestampNs: SAMPLE_CONN_V6.timestampNs + 7n,
      payload: Uint8Array.of(0xab, 0xcd, 0, 1),
    },
    {
      type: "data",
      connId: SAMPLE_CONN_V4.connId,
      direction: Direction.ServerToClient,
      offset: 9_007_199_254_740_000,
      timestampNs: SAMPLE_CONN_V4.timestampNs + 2_000_000n,
      spanNs: 0,
      payload: new Uint8Array(0),
    },
    {
      type: "conn-close",
      connId: SAMPLE_CONN_V4.connId,
      timestampNs: SAMPLE_CONN_V4.timestampNs + 3_000_000n,
      reason: CloseReason.Fin,
      initiator: CloseInitiator.Server,
      bytesClientToServer: 37,
      bytesServerToClient: 0,
    },
  ];
}
