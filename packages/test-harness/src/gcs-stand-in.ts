/**
 * A stand-in for the Google Cloud Storage JSON API, for tests: no GCS emulator runs on this machine (the
 * Firebase one needs Java 21 and a download), so this node:http server answers the calls that
 * `@google-cloud/storage` 7 makes, as the real API does: list with prefix, startOffset, maxResults and
 * page tokens in UTF-8 key order; media downloads with ranges, generations and `x-goog-hash`; metadata;
 * delete; multipart and resumable uploads (308 and `Range` between chunks). It checks credentials as GCS
 * does for a service account's self-signed JWT: the RS256 signature against the account's public key, the
 * issuer, the expiry, and a per-bucket grant of list/get/create/delete.
 *
 * It is a stand-in, not GCS: no ACLs, no metadata beyond size/updated/generation/hashes, no composition.
 */
import { createHash, createPublicKey, generateKeyPairSync, type KeyObject, verify } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export type GcsGrant = "list" | "get" | "create" | "delete";

interface StoredObject {
  readonly bytes: Buffer;
  readonly generation: number;
  readonly updated: string;
  /** Computed once, when the object is stored, as GCS keeps them in the object's metadata. */
  readonly hashes: { readonly md5Hash: string; readonly crc32c: string };
}

interface Upload {
  readonly bucket: string;
  readonly name: string;
  readonly parts: Buffer[];
  received: number;
}

export interface GcsServiceAccountKey {
  readonly email: string;
  /** The service-account key file's JSON, as Google exports it. */
  readonly file: Record<string, string>;
}

export interface GcsStandIn {
  /** `http://127.0.0.1:<port>` (the `apiEndpoint`). */
  readonly endpoint: string;
  readonly port: number;
  /** Makes a bucket; `grants`: who may do what in it (email → grants); without grants, anyone. */
  createBucket(name: string, grants?: Readonly<Record<string, readonly GcsGrant[]>>): void;
  /** A new service account whose JWTs this server accepts (the key file names a private key). */
  createServiceAccount(email: string): GcsServiceAccountKey;
  /** Objects of a bucket (name → bytes), for assertions. */
  objects(bucket: string): ReadonlyMap<string, Buffer>;
  /** Requests answered, by method and path kind, for assertions. */
  readonly requests: { method: string; path: string }[];
  close(): Promise<void>;
}

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC32C_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function hashes(bytes: Buffer): { md5Hash: string; crc32c: string } {
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32c(bytes));
  return { md5Hash: createHash("md5").update(bytes).digest("base64"), crc32c: crc.toString("base64") };
}

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function body(req: IncomingMessage): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of req) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json; charset=UTF-8",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function apiError(res: ServerResponse, status: number, reason: string, message: string): void {
  json(res, status, { error: { code: status, message, errors: [{ reason, message, domain: "global" }] } });
}

/** The multipart/related upload body: the JSON metadata part, then the media part. */
function parseMultipart(
  contentType: string,
  bytes: Buffer,
): { metadata: Record<string, unknown>; media: Buffer } {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary) throw new Error("no multipart boundary");
  const sep = Buffer.from(`--${boundary}`);
  const parts: Buffer[] = [];
  let at = bytes.indexOf(sep);
  while (at >= 0) {
    const next = bytes.indexOf(sep, at + sep.length);
    if (next < 0) break;
    parts.push(bytes.subarray(at + sep.length, next));
    at = next;
  }
  const content = (part: Buffer) => {
    const headEnd = part.indexOf("\r\n\r\n");
    return part.subarray(headEnd + 4, part.length - 2); // the part ends with CRLF before the boundary
  };
  if (parts.length < 2) throw new Error("multipart body without two parts");
  return {
    metadata: JSON.parse(content(parts[0]!).toString("utf8")),
    media: Buffer.from(content(parts[1]!)),
  };
}

export async function startGcsStandIn(): Promise<GcsStandIn> {
  const buckets = new Map<
    string,
    { objects: Map<string, StoredObject>; grants?: Readonly<Record<string, readonly GcsGrant[]>> }
  >();
  const accounts = new Map<string, KeyObject>();
  const uploads = new Map<string, Upload>();
  const requests: { method: string; path: string }[] = [];
  let generation = 1_700_000_000_000_000;
  let uploadSeq = 0;

  /** The caller's email if its bearer JWT verifies; null when there is none; an error text when bad. */
  const caller = (req: IncomingMessage): string | null | { bad: string } => {
    const auth = req.headers.authorization;
    if (!auth) return null;
    const token = /^Bearer (.+)$/.exec(auth)?.[1];
    const parts = token?.split(".");
    if (!parts || parts.length !== 3) return { bad: "not a JWT" };
    let header: { alg?: string };
    let claims: { iss?: string; exp?: number };
    try {
      header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8"));
      claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
    } catch {
      return { bad: "JWT does not decode" };
    }
    if (header.alg !== "RS256") return { bad: "JWT not RS256" };
    const key = claims.iss === undefined ? undefined : accounts.get(claims.iss);
    if (!key) return { bad: `unknown service account ${claims.iss}` };
    const ok = verify(
      "RSA-SHA256",
      Buffer.from(`${parts[0]}.${parts[1]}`),
      key,
      Buffer.from(parts[2]!, "base64url"),
    );
    if (!ok) return { bad: "JWT signature does not verify" };
    if (claims.exp === undefined || claims.exp * 1000 < Date.now()) return { bad: "JWT expired" };
    return claims.iss!;
  };

  /** True when the request may go on; otherwise the error reply is sent. */
  const allowed = (
    req: IncomingMessage,
    res: ServerResponse,
    bucketName: string,
    grant: GcsGrant,
  ): boolean => {
    const bucket = buckets.get(bucketName);
    const who = caller(req);
    if (who !== null && typeof who === "object") {
      apiError(res, 401, "authError", `Invalid Credentials: ${who.bad}`);
      return false;
    }
    if (!bucket) {
      apiError(res, 404, "notFound", "The specified bucket does not exist.");
      return false;
    }
    if (!bucket.grants) return true;
    if (who === null) {
      apiError(res, 401, "required", "Anonymous caller does not have storage.objects access.");
      return false;
    }
    if (!bucket.grants[who]?.includes(grant)) {
      apiError(res, 403, "forbidden", `${who} does not have storage.objects.${grant} access to the bucket.`);
      return false;
    }
    return true;
  };

  const resource = (bucket: string, name: string, o: StoredObject) => ({
    kind: "storage#object",
    id: `${bucket}/${name}/${o.generation}`,
    name,
    bucket,
    generation: String(o.generation),
    metageneration: "1",
    contentType: "application/octet-stream",
    size: String(o.bytes.length),
    updated: o.updated,
    timeCreated: o.updated,
    ...o.hashes,
  });

  const store = (bucket: string, name: string, bytes: Buffer) => {
    const o = { bytes, generation: ++generation, updated: new Date().toISOString(), hashes: hashes(bytes) };
    buckets.get(bucket)!.objects.set(name, o);
    return o;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://stand-in");
    const path = url.pathname;
    requests.push({ method: req.method ?? "", path });
    const list = /^\/storage\/v1\/b\/([^/]+)\/o$/.exec(path);
    const object = /^\/storage\/v1\/b\/([^/]+)\/o\/(.+)$/.exec(path);
    const upload = /^\/upload\/storage\/v1\/b\/([^/]+)\/o$/.exec(path);
    const bucketPath = /^\/storage\/v1\/b\/([^/]+)$/.exec(path);
    let m: RegExpExecArray | null;
    m = list;
    if (m && req.method === "GET") {
      const b = decodeURIComponent(m[1]!);
      if (!allowed(req, res, b, "list")) return;
      const prefix = url.searchParams.get("prefix") ?? "";
      const startOffset = url.searchParams.get("startOffset");
      const pageToken = url.searchParams.get("pageToken");
      const max = Math.min(Number(url.searchParams.get("maxResults") ?? 1000) || 1000, 1000);
      const after = pageToken === null ? undefined : Buffer.from(pageToken, "base64url").toString("utf8");
      const names = [...buckets.get(b)!.objects.keys()]
        .filter(
          (n) =>
            n.startsWith(prefix) &&
            (startOffset === null || byUtf8(n, startOffset) >= 0) &&
            (after === undefined || byUtf8(n, after) > 0),
        )
        .sort(byUtf8);
      const page = names.slice(0, max);
      const objects = buckets.get(b)!.objects;
      json(res, 200, {
        kind: "storage#objects",
        items: page.map((n) => resource(b, n, objects.get(n)!)),
        ...(names.length > max ? { nextPageToken: Buffer.from(page.at(-1)!).toString("base64url") } : {}),
      });
      return;
    }
    m = object;
    if (m) {
      const b = decodeURIComponent(m[1]!);
      const name = decodeURIComponent(m[2]!);
      const grant: GcsGrant = req.method === "DELETE" ? "delete" : "get";
      if (!allowed(req, res, b, grant)) return;
      const o = buckets.get(b)!.objects.get(name);
      const wanted = url.searchParams.get("generation") ?? url.searchParams.get("ifGenerationMatch");
      if (!o) {
        apiError(res, 404, "notFound", `No such object: ${b}/${name}`);
        return;
      }
      if (wanted !== null && wanted !== String(o.generation)) {
        if (url.searchParams.has("generation"))
          apiError(res, 404, "notFound", `No such object: ${b}/${name}#${wanted}`);
        else apiError(res, 412, "conditionNotMet", "Precondition Failed");
        return;
      }
      if (req.method === "DELETE") {
        buckets.get(b)!.objects.delete(name);
        res.writeHead(204).end();
        return;
      }
      if (url.searchParams.get("alt") !== "media") {
        json(res, 200, resource(b, name, o));
        return;
      }
      const h = o.hashes;
      const headers: Record<string, string | number> = {
        "content-type": "application/octet-stream",
        "x-goog-generation": String(o.generation),
        "x-goog-hash": `crc32c=${h.crc32c},md5=${h.md5Hash}`,
        "x-goog-stored-content-length": o.bytes.length,
        "x-goog-stored-content-encoding": "identity",
        etag: `"${h.md5Hash}"`,
      };
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      if (range) {
        const start = Number(range[1]);
        const end = range[2] === "" ? o.bytes.length - 1 : Math.min(Number(range[2]), o.bytes.length - 1);
        if (start >= o.bytes.length) {
          res.writeHead(416, { "content-range": `bytes */${o.bytes.length}` }).end();
          return;
        }
        const slice = o.bytes.subarray(start, end + 1);
        res.writeHead(206, {
          ...headers,
          "content-length": slice.length,
          "content-range": `bytes ${start}-${end}/${o.bytes.length}`,
        });
        res.end(slice);
        return;
      }
      res.writeHead(200, { ...headers, "content-length": o.bytes.length });
      res.end(o.bytes);
      return;
    }
    m = upload;
    if (m) {
      const b = decodeURIComponent(m[1]!);
      const type = url.searchParams.get("uploadType");
      const uploadId = url.searchParams.get("upload_id");
      if (uploadId !== null && req.method === "PUT") {
        const up = uploads.get(uploadId);
        const bytes = await body(req);
        if (!up) {
          apiError(res, 404, "notFound", "No such upload");
          return;
        }
        // "bytes A-B/T" (a chunk; T "*" while unknown), "bytes A-*/*" (the rest, streamed: the request's end
        // is the object's), "bytes */T" (a status query, or the end of an upload of T bytes).
        const cr = /^bytes (\d+)-(\d+|\*)\/(\d+|\*)$|^bytes \*\/(\d+|\*)$/.exec(
          req.headers["content-range"] ?? "",
        );
        if (cr?.[1] !== undefined && Number(cr[1]) !== up.received) {
          res.writeHead(308, up.received > 0 ? { range: `bytes=0-${up.received - 1}` } : {}).end();
          return;
        }
        up.parts.push(bytes);
        up.received += bytes.length;
        const total = cr?.[2] === "*" ? String(up.received) : (cr?.[3] ?? cr?.[4]);
        if (total === undefined || total === "*" || Number(total) > up.received) {
          res.writeHead(308, up.received > 0 ? { range: `bytes=0-${up.received - 1}` } : {}).end();
          return;
        }
        uploads.delete(uploadId);
        const o = store(up.bucket, up.name, Buffer.concat(up.parts));
        json(res, 200, resource(up.bucket, up.name, o));
        return;
      }
      if (!allowed(req, res, b, "create")) return;
      if (type === "multipart" && req.method === "POST") {
        const { metadata, media } = parseMultipart(req.headers["content-type"] ?? "", await body(req));
        const name = String(metadata["name"] ?? url.searchParams.get("name"));
        json(res, 200, resource(b, name, store(b, name, media)));
        return;
      }
      if (type === "resumable" && req.method === "POST") {
        const meta = await body(req);
        const parsed = meta.length ? (JSON.parse(meta.toString("utf8")) as { name?: string }) : {};
        const name = parsed.name ?? url.searchParams.get("name") ?? "";
        const id = `u${++uploadSeq}`;
        uploads.set(id, { bucket: b, name, parts: [], received: 0 });
        res.writeHead(200, {
          location: `http://${req.headers.host}/upload/storage/v1/b/${encodeURIComponent(b)}/o?uploadType=resumable&upload_id=${id}`,
        });
        res.end();
        return;
      }
    }
    m = bucketPath;
    if (m && req.method === "GET") {
      const b = decodeURIComponent(m[1]!);
      if (!buckets.has(b)) apiError(res, 404, "notFound", "The specified bucket does not exist.");
      else json(res, 200, { kind: "storage#bucket", name: b, id: b });
      return;
    }
    apiError(res, 400, "invalid", `the stand-in does not answer ${req.method} ${path}`);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) apiError(res, 500, "backendError", String(err));
      else res.destroy();
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    requests,
    createBucket(name, grants) {
      buckets.set(name, { objects: new Map(), ...(grants ? { grants } : {}) });
    },
    createServiceAccount(email) {
      const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      accounts.set(email, createPublicKey(publicKey.export({ format: "pem", type: "spki" })));
      return {
        email,
        file: {
          type: "service_account",
          project_id: "cloudtap-tests",
          private_key_id: createHash("sha256").update(email).digest("hex").slice(0, 40),
          private_key: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
          client_email: email,
          client_id: "1",
          auth_uri: "https://accounts.google.com/o/oauth2/auth",
          token_uri: "https://oauth2.googleapis.com/token",
        },
      };
    },
    objects(bucket) {
      return new Map(
        [...(buckets.get(bucket)?.objects ?? new Map<string, StoredObject>())].map(([k, o]) => [k, o.bytes]),
      );
    },
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
