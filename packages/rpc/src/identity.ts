/** The identities of the mesh: who a certificate says its holder is (CN and URI SAN `spiffe://cloudtap/<id>`). */
export const ServiceIdentity = {
  Fetcher: "fetcher",
  KeyBroker: "key-broker",
  Stitcher: "stitcher",
  MirrorEgress: "mirror-egress",
  Cli: "cloudtap-cli",
} as const;
export type ServiceIdentity = (typeof ServiceIdentity)[keyof typeof ServiceIdentity];

export const SERVICE_IDENTITIES: readonly ServiceIdentity[] = Object.values(ServiceIdentity);

/** The trust domain of the URI SANs. */
export const SPIFFE_TRUST_DOMAIN = "cloudtap";

export function spiffeId(identity: string): string {
  return `spiffe://${SPIFFE_TRUST_DOMAIN}/${identity}`;
}
