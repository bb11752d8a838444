/**
 * What the applications on a simulated connection say: HTTP exchanges (HTTP/1.1 and HTTP/2) and DNS queries.
 * Bodies are mostly small with a seeded few of megabytes; paths look like what the service would see.
 */
import type { BodySpec } from "./body.js";
import type { Service, ServiceProfile } from "./population.js";
import type { Prng } from "./prng.js";

export type HeaderList = readonly (readonly [string, string])[];

export interface HttpExchangePlan {
  readonly index: number;
  readonly method: "GET" | "POST" | "PUT" | "DELETE";
  /** Unique within its connection, so an HTTP/2 server can match concurrent streams to the plan. */
  readonly path: string;
  /** Request headers besides the ones every request carries (host, user agent, accept, body headers). */
  readonly requestHeaders: HeaderList;
  readonly requestBody?: BodySpec;
  readonly status: number;
  /** Response headers besides date, content type and length. */
  readonly responseHeaders: HeaderList;
  /** Length 0 for responses without a body (204, 304). */
  readonly responseBody: BodySpec;
  /** HTTP/1.1 only: send the response body with chunked transfer coding instead of a content length. */
  readonly chunked: boolean;
  /** Virtual time the client waits before sending this request (reading, rendering, user think time). */
  readonly thinkNs: number;
  /** HTTP/2 only: requests of one wave are sent concurrently; a wave starts when the previous one ended. */
  readonly wave: number;
}

export const DnsType = { A: 1, TXT: 16, AAAA: 28, HTTPS: 65 } as const;
export type DnsType = (typeof DnsType)[keyof typeof DnsType];

export interface DnsQueryPlan {
  readonly id: number;
  readonly name: string;
  readonly type: DnsType;
  /** Adds an EDNS(0) OPT record advertising a 1232-byte UDP payload, as most stub resolvers do. */
  readonly edns: boolean;
  readonly thinkNs: number;
}

export const REASON_PHRASES: Readonly<Record<number, string>> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  302: "Found",
  304: "Not Modified",
  404: "Not Found",
};

const KiB = 1024;
const MiB = 1024 * 1024;

function clampInt(v: number, lo: number, hi: number): number {
  return Math.max(lo, Math.min(hi, Math.round(v)));
}

/** Mostly small, some medium, a seeded few large; `largeWeight` raises the share of large bodies. */
function responseLength(prng: Prng, largeWeight: number): number {
  const size = prng.weighted<"small" | "medium" | "large">([
    ["small", 72],
    ["medium", 24],
    ["large", 4 * largeWeight],
  ]);
  if (size === "small") return clampInt(prng.logNormal(1800, 1.1), 2, 64 * KiB);
  if (size === "medium") return clampInt(prng.logNormal(48 * KiB, 0.9), 16 * KiB, MiB);
  return prng.int(512 * KiB, 6 * MiB);
}

function thinkTime(prng: Prng): number {
  // Most follow-up requests come quickly (scripts, assets); some wait for a person.
  return Math.round(prng.chance(0.85) ? prng.exponential(180e6) : prng.exponential(4e9));
}

function uuid(prng: Prng): string {
  const h = prng.hex(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

interface Draft {
  method: HttpExchangePlan["method"];
  path: string;
  requestHeaders?: HeaderList;
  requestLength?: number;
  requestType?: string;
  status: number;
  responseHeaders?: HeaderList;
  responseLength: number;
  responseType: string;
}

function draftFor(profile: ServiceProfile, prng: Prng, first: boolean, service: Service): Draft {
  switch (profile) {
    case "web-app": {
      const kind = first
        ? "page"
        : prng.weighted<string>([
            ["asset", 5],
            ["api", 4],
            ["post", 2],
            ["missing", 1],
            ["cached", 1],
          ]);
      if (kind === "page")
        return {
          method: "GET",
          path: "/",
          status: 200,
          responseLength: clampInt(prng.logNormal(24 * KiB, 0.6), 2 * KiB, 300 * KiB),
          responseType: "text/html; charset=utf-8",
        };
      if (kind === "asset") {
        const ext = prng.pick(["js", "css"]);
        return {
          method: "GET",
          path: `/static/${ext}/main.${prng.hex(4)}.${ext}`,
          status: 200,
          responseLength: responseLength(prng, 0.5),
          responseType: ext === "js" ? "application/javascript" : "text/css",
        };
      }
      if (kind === "api")
        return {
          method: "GET",
          path: `/api/v1/items/${prng.int(1000, 999999)}?view=${prng.pick(["full", "summary"])}`,
          status: 200,
          responseLength: responseLength(prng, 0.3),
          responseType: "application/json",
        };
      if (kind === "post")
        return {
          method: "POST",
          path: `/api/v1/items/${prng.int(1000, 999999)}/events`,
          requestLength: clampInt(prng.logNormal(600, 1), 20, 32 * KiB),
          requestType: "application/json",
          status: 201,
          responseLength: clampInt(prng.logNormal(300, 0.6), 20, 4 * KiB),
          responseType: "application/json",
        };
      if (kind === "missing")
        return {
          method: "GET",
          path: `/favicon-${prng.hex(3)}.ico`,
          status: 404,
          responseLength: prng.int(120, 600),
          responseType: "text/html; charset=utf-8",
        };
      return {
        method: "GET",
        path: `/static/img/logo.${prng.hex(4)}.svg`,
        requestHeaders: [["if-none-match", `"${prng.hex(8)}"`]],
        status: 304,
        responseHeaders: [["etag", `"${prng.hex(8)}"`]],
        responseLength: 0,
        responseType: "image/svg+xml",
      };
    }
    case "api": {
      const kind = prng.weighted<string>([
        ["read", 6],
        ["list", 3],
        ["create", 2],
        ["update", 1],
        ["delete", 1],
      ]);
      const id = prng.int(10000, 9999999);
      if (kind === "read")
        return {
          method: "GET",
          path: `/v2/accounts/${id}`,
          status: prng.chance(0.06) ? 404 : 200,
          responseLength: clampInt(prng.logNormal(900, 0.8), 40, 64 * KiB),
          responseType: "application/json",
        };
      if (kind === "list")
        return {
          method: "GET",
          path: `/v2/accounts/${id}/transactions?limit=${prng.pick([20, 50, 100])}&cursor=${prng.hex(6)}`,
          status: 200,
          responseLength: responseLength(prng, 0.4),
          responseType: "application/json",
        };
      if (kind === "create")
        return {
          method: "POST",
          path: `/v2/charges?request=${prng.hex(6)}`,
          requestLength: clampInt(prng.logNormal(700, 0.8), 40, 64 * KiB),
          requestType: "application/json",
          requestHeaders: [["idempotency-key", uuid(prng)]],
          status: 201,
          responseLength: clampInt(prng.logNormal(1200, 0.5), 60, 16 * KiB),
          responseType: "application/json",
        };
      if (kind === "update")
        return {
          method: "PUT",
          path: `/v2/accounts/${id}/settings`,
          requestLength: clampInt(prng.logNormal(400, 0.7), 20, 16 * KiB),
          requestType: "application/json",
          status: 204,
          responseLength: 0,
          responseType: "application/json",
        };
      return {
        method: "DELETE",
        path: `/v2/sessions/${prng.hex(12)}`,
        status: 204,
        responseLength: 0,
        responseType: "application/json",
      };
    }
    case "files": {
      const kind = prng.weighted<string>([
        ["list", 3],
        ["download", 4],
        ["upload", 2],
      ]);
      if (kind === "list")
        return {
          method: "GET",
          path: `/api/list?path=%2FShared%2F${prng.pick(["Q3", "contracts", "design", "hr"])}&page=${prng.int(1, 9)}&n=${prng.hex(3)}`,
          status: 200,
          responseLength: clampInt(prng.logNormal(6 * KiB, 0.7), 200, 128 * KiB),
          responseType: "application/json",
        };
      if (kind === "download") {
        const ext = prng.pick(["pdf", "zip", "pptx", "xlsx"]);
        return {
          method: "GET",
          path: `/d/${uuid(prng)}/report-${prng.int(1, 99)}.${ext}`,
          status: 200,
          responseHeaders: [["content-disposition", "attachment"]],
          responseLength: responseLength(prng, 5),
          responseType: "application/octet-stream",
        };
      }
      const big = prng.chance(0.3);
      return {
        method: "PUT",
        path: `/upload/${uuid(prng)}`,
        requestLength: big
          ? prng.int(256 * KiB, 3 * MiB)
          : clampInt(prng.logNormal(40 * KiB, 1), 1 * KiB, 512 * KiB),
        requestType: "application/octet-stream",
        status: 201,
        responseLength: clampInt(prng.logNormal(300, 0.4), 40, 2 * KiB),
        responseType: "application/json",
      };
    }
    case "cdn": {
      const kind = prng.weighted<string>([
        ["bundle", 3],
        ["image", 5],
        ["segment", 2],
      ]);
      if (kind === "bundle")
        return {
          method: "GET",
          path: `/assets/${prng.hex(6)}/bundle.js`,
          status: 200,
          responseHeaders: [["cache-control", "public, max-age=31536000, immutable"]],
          responseLength: responseLength(prng, 1),
          responseType: "application/javascript",
        };
      if (kind === "image")
        return {
          method: "GET",
          path: `/img/${prng.hex(8)}.webp`,
          status: prng.chance(0.08) ? 304 : 200,
          responseLength: clampInt(prng.logNormal(30 * KiB, 1), 500, 2 * MiB),
          responseType: "image/webp",
        };
      return {
        method: "GET",
        path: `/video/${prng.hex(6)}/seg-${prng.int(1, 400)}.m4s`,
        status: 200,
        responseLength: prng.int(300 * KiB, 4 * MiB),
        responseType: "video/iso.segment",
      };
    }
    case "telemetry":
      return {
        method: "POST",
        path: `/v1/${prng.pick(["metrics", "traces", "logs"])}?batch=${prng.hex(6)}`,
        requestLength: clampInt(prng.logNormal(8 * KiB, 1), 200, 512 * KiB),
        requestType: "application/x-protobuf",
        status: prng.pick([200, 202]),
        responseLength: prng.int(2, 40),
        responseType: "application/json",
      };
    case "updates": {
      if (first && prng.chance(0.5))
        return {
          method: "GET",
          path: `/dists/stable/InRelease?r=${prng.hex(3)}`,
          requestHeaders: [["if-modified-since", "Mon, 10 Mar 2025 08:12:44 GMT"]],
          status: prng.chance(0.6) ? 304 : 200,
          responseLength: prng.int(20 * KiB, 160 * KiB),
          responseType: "text/plain",
        };
      return {
        method: "GET",
        path: `/pool/main/${prng.pick(["libssl3", "openssh-client", "firefox-esr", "tzdata", "linux-image"])}_${prng.int(1, 9)}.${prng.int(0, 30)}-${prng.int(1, 9)}_amd64.deb`,
        status: 200,
        responseLength: responseLength(prng, 6),
        responseType: "application/vnd.debian.binary-package",
      };
    }
    case "ocsp":
      return {
        method: "POST",
        path: `/?n=${prng.hex(4)}`,
        requestLength: prng.int(75, 110),
        // Bodies are random bytes, not DER: labelled application/ocsp-* they would make analyzers report
        // malformed OCSP, which is the simulator's doing, not the traffic's. Same sizes, opaque type.
        requestType: "application/octet-stream",
        status: 200,
        responseLength: prng.int(1400, 2200),
        responseType: "application/octet-stream",
      };
    case "probe":
      return prng.chance(0.5)
        ? {
            method: "GET",
            path: `/generate_204?c=${prng.hex(3)}`,
            status: 204,
            responseLength: 0,
            responseType: "text/plain",
          }
        : {
            method: "GET",
            path: `/connecttest.txt?c=${prng.hex(3)}`,
            status: 200,
            responseLength: 22,
            responseType: "text/plain",
          };
    case "dns":
      throw new RangeError(`service ${service.host} is a resolver, not an HTTP service`);
  }
}

export interface ExchangePlanOptions {
  /** Seed text under which body contents are derived. */
  readonly bodySeed: string;
  /** HTTP/2 connections get waves of concurrent requests. */
  readonly http2: boolean;
}

/** Plans the HTTP exchanges of one connection. */
export function planHttpExchanges(
  prng: Prng,
  service: Service,
  options: ExchangePlanOptions,
): HttpExchangePlan[] {
  const count =
    service.profile === "probe" || service.profile === "ocsp"
      ? prng.int(1, 2)
      : prng.weighted<number>([
          [1, 3],
          [2, 2],
          [3, 2],
          [prng.int(4, 8), 2],
          [prng.int(9, 16), 1],
        ]);
  const out: HttpExchangePlan[] = [];
  const paths = new Set<string>();
  let wave = 0;
  let waveLeft = 0;
  for (let i = 0; i < count; i++) {
    let d = draftFor(service.profile, prng, i === 0, service);
    while (paths.has(d.path))
      d = { ...d, path: `${d.path}${d.path.includes("?") ? "&" : "?"}v=${prng.hex(2)}` };
    paths.add(d.path);
    let thinkNs = i === 0 ? 0 : thinkTime(prng);
    if (options.http2) {
      if (waveLeft === 0) {
        if (i > 0) wave++;
        waveLeft = prng.int(1, 4);
      } else {
        thinkNs = 0;
      }
      waveLeft--;
    }
    const noBody = d.status === 204 || d.status === 304;
    out.push({
      index: i,
      method: d.method,
      path: d.path,
      requestHeaders: d.requestHeaders ?? [],
      ...(d.requestLength !== undefined && d.requestLength > 0
        ? {
            requestBody: {
              length: d.requestLength,
              contentType: d.requestType ?? "application/octet-stream",
              seed: `${options.bodySeed}/req/${i}`,
            },
          }
        : {}),
      status: d.status,
      responseHeaders: d.responseHeaders ?? [],
      responseBody: {
        length: noBody ? 0 : d.responseLength,
        contentType: d.responseType,
        seed: `${options.bodySeed}/res/${i}`,
      },
      chunked: !options.http2 && !noBody && prng.chance(0.15),
      thinkNs,
      wave,
    });
  }
  return out;
}

/** Plans the DNS queries of one UDP flow (a stub resolver reusing its socket for a burst of lookups). */
export function planDnsQueries(prng: Prng, names: readonly string[], tenantDomain: string): DnsQueryPlan[] {
  const count = prng.weighted<number>([
    [1, 4],
    [2, 4],
    [prng.int(3, 6), 2],
  ]);
  const out: DnsQueryPlan[] = [];
  const ids = new Set<number>();
  for (let i = 0; i < count; i++) {
    let id = prng.int(0, 0xffff);
    while (ids.has(id)) id = (id + 1) & 0xffff;
    ids.add(id);
    const name = prng.weighted<string>([
      [prng.pick(names), 10],
      [`wpad.${tenantDomain}`, 1],
      [`_ldap._tcp.dc.${tenantDomain}`, 1],
    ]);
    const type = prng.weighted<DnsType>([
      [DnsType.A, 6],
      [DnsType.AAAA, 4],
      [DnsType.HTTPS, 2],
      [DnsType.TXT, 1],
    ]);
    out.push({
      id,
      name,
      type,
      edns: prng.chance(0.7),
      thinkNs: i === 0 ? 0 : Math.round(prng.exponential(5e6)),
    });
  }
  return out;
}
