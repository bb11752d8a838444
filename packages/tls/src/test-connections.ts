/**
 * Test-only synthetic TLS connections built with the independent sealers of test-records.ts: both directions'
 * wire bytes, the key log that decrypts them, and the application data each side sent. The handshake messages
 * other than the hellos are placeholders of the right type (the decoder does not verify signatures or
 * Finished MACs). Not part of the API.
 */
import { type CipherSuite, getCipherSuite, TlsVersion } from "./cipher-suites.js";
import { HELLO_RETRY_REQUEST_RANDOM } from "./handshake.js";
import { deriveTls12KeyBlock, deriveTls13TrafficKeys, nextTrafficSecret } from "./key-schedule.js";
import {
  type CbcSealState,
  clientHelloBody,
  encryptedExtensionsBody,
  ext,
  handshakeMessage,
  pattern,
  plainRecord,
  sealTls12Aead,
  sealTls12Cbc,
  sealTls13,
  serverHelloBody,
} from "./test-records.js";

export interface SyntheticConnection {
  /** Client -> server records, each a complete record. */
  readonly c2s: Buffer[];
  readonly s2c: Buffer[];
  readonly keyLog: string;
  readonly clientRandom: Buffer;
  readonly c2sData: Buffer;
  readonly s2cData: Buffer;
  /** Seals a further server -> client record, continuing the server's sequence (for benchmarks). */
  readonly sealServer: (type: number, content: Uint8Array) => Buffer;
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

export interface Tls13Options {
  readonly suite?: number;
  readonly seed?: number;
  readonly helloRetryRequest?: boolean;
  /** The client sends 0-RTT data (and the server accepts it). */
  readonly earlyData?: boolean;
  /** Both sides send a KeyUpdate after their first application record. */
  readonly keyUpdate?: boolean;
  /** Application records per side. */
  readonly records?: number;
  readonly recordSize?: number;
  readonly alpn?: string;
  /** Labels left out of the key log. */
  readonly omit?: readonly string[];
}

export function tls13Connection(options: Tls13Options = {}): SyntheticConnection {
  const suite = getCipherSuite(options.suite ?? 0x1301)!;
  const seed = options.seed ?? 1;
  const hashLength = suite.prfHash === "sha384" ? 48 : 32;
  const secret = (n: number) => pattern(hashLength, seed * 100 + n);
  const secrets = {
    CLIENT_EARLY_TRAFFIC_SECRET: secret(1),
    CLIENT_HANDSHAKE_TRAFFIC_SECRET: secret(2),
    SERVER_HANDSHAKE_TRAFFIC_SECRET: secret(3),
    CLIENT_TRAFFIC_SECRET_0: secret(4),
    SERVER_TRAFFIC_SECRET_0: secret(5),
  };
  const clientRandom = pattern(32, seed);
  const ch = (random: Buffer, early: boolean) =>
    plainRecord(
      22,
      0x0301,
      handshakeMessage(
        1,
        clientHelloBody({
          random,
          suites: [suite.code],
          extensions: [
            ext.serverName("synthetic.example"),
            ...(options.alpn ? [ext.alpn(options.alpn, "http/1.1")] : []),
            ext.clientVersions(0x0304),
            ext.clientKeyShare(0x001d),
            ...(early ? [ext.empty(42), ext.empty(41)] : []),
          ],
        }),
      ),
    );
  const c2s: Buffer[] = [];
  const s2c: Buffer[] = [];
  const c2sData: Buffer[] = [];
  const s2cData: Buffer[] = [];
  c2s.push(ch(clientRandom, options.earlyData ?? false));
  if (options.earlyData) {
    const early = deriveTls13TrafficKeys(suite, secrets.CLIENT_EARLY_TRAFFIC_SECRET);
    const data = pattern(300, seed + 50);
    c2s.push(sealTls13(suite, early, 0, 23, data));
    c2sData.push(data);
    c2s.push(sealTls13(suite, early, 1, 22, handshakeMessage(5, new Uint8Array(0)))); // EndOfEarlyData
  }
  if (options.helloRetryRequest) {
    s2c.push(
      plainRecord(
        22,
        0x0303,
        handshakeMessage(
          2,
          serverHelloBody({
            random: Buffer.from(HELLO_RETRY_REQUEST_RANDOM),
            suite: suite.code,
            extensions: [ext.serverVersion(0x0304), ext.hrrKeyShare(0x0017)],
          }),
        ),
      ),
    );
    s2c.push(plainRecord(20, 0x0303, Buffer.from([1])));
    c2s.push(plainRecord(20, 0x0303, Buffer.from([1])));
    c2s.push(ch(clientRandom, false));
  }
  s2c.push(
    plainRecord(
      22,
      0x0303,
      handshakeMessage(
        2,
        serverHelloBody({
          random: pattern(32, seed + 1),
          suite: suite.code,
          extensions: [
            ext.serverVersion(0x0304),
            ext.serverKeyShare(options.helloRetryRequest ? 0x0017 : 0x001d),
            ...(options.earlyData ? [ext.empty(41)] : []),
          ],
        }),
      ),
    ),
  );
  if (!options.helloRetryRequest) s2c.push(plainRecord(20, 0x0303, Buffer.from([1])));
  const shs = deriveTls13TrafficKeys(suite, secrets.SERVER_HANDSHAKE_TRAFFIC_SECRET);
  const flight = Buffer.concat([
    handshakeMessage(
      8,
      encryptedExtensionsBody([
        ...(options.alpn ? [ext.alpn(options.alpn)] : []),
        ...(options.earlyData ? [ext.empty(42)] : []),
      ]),
    ),
    handshakeMessage(11, pattern(1200, seed + 2)),
    handshakeMessage(15, pattern(260, seed + 3)),
    handshakeMessage(20, pattern(hashLength, seed + 4)),
  ]);
  // The flight split over two records, the second message across the boundary.
  s2c.push(sealTls13(suite, shs, 0, 22, flight.subarray(0, 700)));
  s2c.push(sealTls13(suite, shs, 1, 22, flight.subarray(700), 7));
  const chs = deriveTls13TrafficKeys(suite, secrets.CLIENT_HANDSHAKE_TRAFFIC_SECRET);
  c2s.push(sealTls13(suite, chs, 0, 22, handshakeMessage(20, pattern(hashLength, seed + 5))));

  const records = options.records ?? 3;
  const size = options.recordSize ?? 500;
  const side = (
    out: Buffer[],
    data: Buffer[],
    start: Uint8Array,
    dataSeed: number,
    ticket: boolean,
  ): ((type: number, content: Uint8Array) => Buffer) => {
    let traffic = start;
    let keys = deriveTls13TrafficKeys(suite, traffic);
    let seq = 0;
    if (ticket) out.push(sealTls13(suite, keys, seq++, 22, handshakeMessage(4, pattern(120, dataSeed))));
    for (let i = 0; i < records; i++) {
      const d = pattern(size + i, dataSeed + i);
      out.push(sealTls13(suite, keys, seq++, 23, d, i));
      data.push(d);
      if (options.keyUpdate && i === 0) {
        out.push(sealTls13(suite, keys, seq++, 22, handshakeMessage(24, Buffer.from([0]))));
        traffic = nextTrafficSecret(suite.prfHash, traffic);
        keys = deriveTls13TrafficKeys(suite, traffic);
        seq = 0;
      }
    }
    out.push(sealTls13(suite, keys, seq++, 21, Buffer.from([1, 0])));
    return (type, content) => sealTls13(suite, keys, seq++, type, content);
  };
  const sealServer = side(s2c, s2cData, secrets.SERVER_TRAFFIC_SECRET_0, seed + 10, true);
  side(c2s, c2sData, secrets.CLIENT_TRAFFIC_SECRET_0, seed + 20, false);
  const omit = new Set(options.omit ?? []);
  const keyLog = Object.entries(secrets)
    .filter(([label]) => !omit.has(label) && (label !== "CLIENT_EARLY_TRAFFIC_SECRET" || options.earlyData))
    .map(([label, s]) => `${label} ${hex(clientRandom)} ${hex(s)}\n`)
    .join("");
  return {
    c2s,
    s2c,
    keyLog,
    clientRandom,
    c2sData: Buffer.concat(c2sData),
    s2cData: Buffer.concat(s2cData),
    sealServer,
  };
}

export interface Tls12Options {
  readonly suite?: number;
  readonly version?: number;
  readonly seed?: number;
  readonly encryptThenMac?: boolean;
  /** Abbreviated handshake: the server sends ChangeCipherSpec and Finished first. */
  readonly resumed?: boolean;
  readonly records?: number;
  readonly recordSize?: number;
}

export function tls12Connection(options: Tls12Options = {}): SyntheticConnection {
  const suite: CipherSuite = getCipherSuite(options.suite ?? 0xc02f)!;
  const version = options.version ?? TlsVersion.Tls12;
  const seed = options.seed ?? 1;
  const clientRandom = pattern(32, seed);
  const serverRandom = pattern(32, seed + 1);
  const master = pattern(48, seed + 2);
  const etm = (options.encryptThenMac ?? false) && suite.cipher.kind === "block";
  const block = deriveTls12KeyBlock(version, suite, master, clientRandom, serverRandom);
  const sessionId = pattern(32, seed + 3);
  const c2s: Buffer[] = [];
  const s2c: Buffer[] = [];
  const c2sData: Buffer[] = [];
  const s2cData: Buffer[] = [];
  c2s.push(
    plainRecord(
      22,
      0x0301,
      handshakeMessage(
        1,
        clientHelloBody({
          random: clientRandom,
          sessionId: options.resumed ? sessionId : new Uint8Array(0),
          suites: [suite.code],
          version,
          extensions: [
            ext.serverName("tls12.example"),
            ext.alpn("http/1.1"),
            ...(etm ? [ext.empty(22)] : []),
            ext.empty(23),
          ],
        }),
      ),
    ),
  );
  const sh = handshakeMessage(
    2,
    serverHelloBody({
      random: serverRandom,
      sessionId,
      suite: suite.code,
      version,
      extensions: [ext.alpn("http/1.1"), ...(etm ? [ext.empty(22)] : []), ext.empty(23)],
    }),
  );
  const sealer = (keys: typeof block.client) => {
    let seq = 0;
    const state: CbcSealState = { chainIv: keys.iv };
    return (type: number, content: Uint8Array) => {
      const s = seq++;
      if (suite.cipher.kind === "aead") return sealTls12Aead(suite, keys, s, type, content, version);
      return sealTls12Cbc(suite, keys, version, s, type, content, {
        etm,
        explicitIv: pattern(suite.cipher.blockSize, 1000 + s),
        state,
      });
    };
  };
  const client = sealer(block.client);
  const server = sealer(block.server);
  const ccs = plainRecord(20, version, Buffer.from([1]));
  const finished = (n: number) => handshakeMessage(20, pattern(12, n));
  if (options.resumed) {
    s2c.push(plainRecord(22, version, sh), ccs, server(22, finished(seed + 4)));
    c2s.push(ccs, client(22, finished(seed + 5)));
  } else {
    s2c.push(
      plainRecord(
        22,
        version,
        Buffer.concat([
          sh,
          handshakeMessage(11, pattern(900, seed + 6)),
          handshakeMessage(12, pattern(300, seed + 7)),
          handshakeMessage(14, new Uint8Array(0)),
        ]),
      ),
    );
    c2s.push(
      plainRecord(22, version, handshakeMessage(16, pattern(66, seed + 8))),
      ccs,
      client(22, finished(seed + 5)),
    );
    s2c.push(
      plainRecord(22, version, handshakeMessage(4, pattern(100, seed + 9))),
      ccs,
      server(22, finished(seed + 4)),
    );
  }
  const records = options.records ?? 3;
  const size = options.recordSize ?? 500;
  for (let i = 0; i < records; i++) {
    const a = pattern(size + i, seed + 20 + i);
    const b = pattern(size * 2 + i, seed + 40 + i);
    c2s.push(client(23, a));
    s2c.push(server(23, b));
    c2sData.push(a);
    s2cData.push(b);
  }
  c2s.push(client(21, Buffer.from([1, 0])));
  const keyLog = `# synthetic\nCLIENT_RANDOM ${hex(clientRandom)} ${hex(master)}\n`;
  return {
    c2s,
    s2c,
    keyLog,
    clientRandom,
    c2sData: Buffer.concat(c2sData),
    s2cData: Buffer.concat(s2cData),
    sealServer: server,
  };
}
