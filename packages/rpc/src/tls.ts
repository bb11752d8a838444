/**
 * Mutual TLS for the mesh: credentials from a directory made by `createPki`, and the caller's identity from
 * the certificate the TLS handshake verified.
 *
 * `serverCredentials` requires a client certificate signed by the CA, so a caller without one never gets a
 * call through. `peerIdentity` trusts only what grpc-js reports for an authorized socket
 * (`getAuthContext().sslPeerCertificate`, absent unless the chain was verified); the identity is the CN and
 * must agree with the URI SAN `spiffe://cloudtap/<identity>`.
 */
import { readFile } from "node:fs/promises";
import type { PeerCertificate } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import { ErrorCategory, RpcError } from "./errors.js";
import { spiffeId } from "./identity.js";
import { caCertificatePath, certificatePath, privateKeyPath } from "./pki.js";
import type { AuthContext } from "./service-adapter.js";

export async function serverCredentials(dir: string, identity: string): Promise<grpc.ServerCredentials> {
  const [ca, key, cert] = await Promise.all([
    readFile(caCertificatePath(dir)),
    readFile(privateKeyPath(dir, identity)),
    readFile(certificatePath(dir, identity)),
  ]);
  return grpc.ServerCredentials.createSsl(ca, [{ private_key: key, cert_chain: cert }], true);
}

export async function clientCredentials(dir: string, identity: string): Promise<grpc.ChannelCredentials> {
  const [ca, key, cert] = await Promise.all([
    readFile(caCertificatePath(dir)),
    readFile(privateKeyPath(dir, identity)),
    readFile(certificatePath(dir, identity)),
  ]);
  return grpc.credentials.createSsl(ca, key, cert);
}

/** Anything that exposes grpc-js's authentication context: a server call or a `HandlerContext`. */
export interface AuthContextSource {
  getAuthContext(): AuthContext | null;
}

function uriSans(cert: PeerCertificate): string[] {
  // subjectaltname reads like `URI:spiffe://cloudtap/stitcher, DNS:localhost, IP Address:127.0.0.1`.
  return (cert.subjectaltname ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.startsWith("URI:"))
    .map((s) => s.slice(4));
}

/** The verified identity of the caller, or undefined (no verified certificate, or CN and URI SAN disagree). */
export function peerIdentity(call: AuthContextSource): string | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert) return undefined;
  const cn = cert.subject?.CN;
  const name = Array.isArray(cn) ? undefined : cn;
  if (!name) return undefined;
  return uriSans(cert).includes(spiffeId(name)) ? name : undefined;
}

/** Throws UNAUTHENTICATED without a verified identity, PERMISSION_DENIED for one not in `allowed`. */
export function requireIdentity(call: AuthContextSource, allowed: readonly string[]): string {
  const identity = peerIdentity(call);
  if (identity === undefined) {
    throw new RpcError(
      ErrorCategory.Unauthenticated,
      "no verified client certificate with a cloudtap identity",
    );
  }
  if (!allowed.includes(identity)) {
    throw new RpcError(
      ErrorCategory.PermissionDenied,
      `identity ${JSON.stringify(identity)} may not call this service`,
    );
  }
  return identity;
}

/**
 * Channel options that make a client check that the server's certificate names `identity` (every mesh
 * server certificate carries its identity as a DNS name), so a client reaches the service it meant to,
 * whatever address it dialled (an IP address is not a TLS server name).
 */
export function expectServerIdentity(identity: string): { "grpc.ssl_target_name_override": string } {
  return { "grpc.ssl_target_name_override": identity };
}
