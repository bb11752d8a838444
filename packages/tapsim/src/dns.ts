/**
 * The DNS side of the simulation: a recursive-resolver stand-in that answers from the population's services,
 * and a stub client that sends the planned queries over one UDP socket (one flow) and checks the answers.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import type { ByteTally } from "./byte-tally.js";
import type { ConnectionPlan } from "./connection-plan.js";
import type { ConnectionTap } from "./connection-tap.js";
import {
  type DnsAnswer,
  DnsFormatError,
  DnsRcode,
  decodeQuery,
  decodeResponseSummary,
  dnsTypeName,
  encodeQuery,
  encodeResponse,
  rcodeName,
} from "./dns-message.js";
import { DnsType } from "./exchange-plan.js";
import type { Service } from "./population.js";

/** What the stub saw for one query; goes to the manifest. */
export interface DnsQueryResult {
  readonly id: number;
  readonly name: string;
  readonly type: string;
  readonly rcode: string;
  readonly answers: number;
}

const ANSWER_TTL = 300;

/** The answers a resolver gives for `name`/`type`, from the services of the population. */
export function resolve(
  services: readonly Service[],
  name: string,
  type: number,
): { rcode: DnsRcode; answers: DnsAnswer[] } {
  const service = services.find((s) => s.host === name.toLowerCase());
  if (!service) return { rcode: DnsRcode.NxDomain, answers: [] };
  switch (type) {
    case DnsType.A:
      return {
        rcode: DnsRcode.NoError,
        answers: [{ type: DnsType.A, ttl: ANSWER_TTL, address: service.ipv4 }],
      };
    case DnsType.AAAA:
      return {
        rcode: DnsRcode.NoError,
        answers: [{ type: DnsType.AAAA, ttl: ANSWER_TTL, address: service.ipv6 }],
      };
    case DnsType.HTTPS:
      return service.kind === "https"
        ? {
            rcode: DnsRcode.NoError,
            answers: [
              {
                type: DnsType.HTTPS,
                ttl: ANSWER_TTL,
                alpn: service.prefersH2 ? ["h2", "http/1.1"] : ["http/1.1"],
              },
            ],
          }
        : { rcode: DnsRcode.NoError, answers: [] };
    case DnsType.TXT:
      return {
        rcode: DnsRcode.NoError,
        answers: [{ type: DnsType.TXT, ttl: ANSWER_TTL, text: "v=spf1 -all" }],
      };
    default:
      return { rcode: DnsRcode.NoError, answers: [] };
  }
}

function zoneOf(name: string): string {
  return name.split(".").slice(-2).join(".");
}

export interface DnsServer {
  readonly port: number;
  /** Queries that could not be parsed (answered with nothing). */
  readonly malformed: number;
  close(): Promise<void>;
}

export async function startDnsServer(services: readonly Service[]): Promise<DnsServer> {
  const socket = createSocket("udp4");
  let malformed = 0;
  socket.on("message", (msg, rinfo) => {
    try {
      const query = decodeQuery(msg);
      const { rcode, answers } = resolve(services, query.name, query.type);
      socket.send(encodeResponse(query, rcode, answers, zoneOf(query.name)), rinfo.port, rinfo.address);
    } catch {
      // A query the resolver cannot parse or answer gets no answer, as a real one would drop it; counted.
      malformed++;
    }
  });
  await new Promise<void>((resolveBind, reject) => {
    socket.once("error", reject);
    socket.bind(0, "127.0.0.1", () => {
      socket.off("error", reject);
      resolveBind();
    });
  });
  return {
    port: socket.address().port,
    get malformed() {
      return malformed;
    },
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

export interface DnsClientOptions {
  readonly plan: ConnectionPlan;
  readonly tap: ConnectionTap;
  readonly loopbackAddress: string;
  readonly relayPort: number;
  readonly sent: ByteTally;
  readonly received: ByteTally;
  /** Real time to wait for an answer. */
  readonly answerTimeoutMs: number;
  readonly signal?: AbortSignal;
}

function bindSocket(socket: UdpSocket, address: string): Promise<void> {
  return new Promise((resolveBind, reject) => {
    socket.once("error", reject);
    socket.bind(0, address, () => {
      socket.off("error", reject);
      resolveBind();
    });
  });
}

/** Sends the planned queries one after the other from one socket, as a stub resolver does. */
export async function runDnsClient(options: DnsClientOptions): Promise<DnsQueryResult[]> {
  const { plan, tap } = options;
  const socket = createSocket("udp4");
  await bindSocket(socket, options.loopbackAddress);
  const results: DnsQueryResult[] = [];
  try {
    for (const q of plan.dnsQueries) {
      options.signal?.throwIfAborted();
      tap.advance(q.thinkNs);
      const message = encodeQuery({
        id: q.id,
        name: q.name,
        type: q.type,
        recursionDesired: true,
        edns: q.edns,
      });
      const answer = new Promise<Buffer>((resolveAnswer, reject) => {
        const finish = () => {
          clearTimeout(timer);
          socket.off("message", onMessage);
          options.signal?.removeEventListener("abort", onAbort);
        };
        const timer = setTimeout(() => {
          finish();
          reject(
            new DnsFormatError(`no answer to query ${q.id} (${q.name}) within ${options.answerTimeoutMs} ms`),
          );
        }, options.answerTimeoutMs);
        const onMessage = (msg: Buffer) => {
          finish();
          resolveAnswer(msg);
        };
        const onAbort = () => {
          finish();
          reject(options.signal?.reason);
        };
        socket.on("message", onMessage);
        options.signal?.addEventListener("abort", onAbort, { once: true });
      });
      options.sent.update(message);
      socket.send(message, options.relayPort, "127.0.0.1");
      const reply = await answer;
      options.received.update(reply);
      const summary = decodeResponseSummary(reply);
      if (summary.id !== q.id) throw new DnsFormatError(`answer id ${summary.id} for query ${q.id}`);
      results.push({
        id: q.id,
        name: q.name,
        type: dnsTypeName(q.type),
        rcode: rcodeName(summary.rcode),
        answers: summary.answerCount,
      });
    }
  } finally {
    await new Promise<void>((r) => socket.close(() => r()));
  }
  return results;
}
