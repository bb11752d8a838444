import assert from "node:assert/strict";
import { byEndpoints, followStreams } from "./tshark.js";

/** What a manifest check reads of the simulator's manifest (structurally; no dependency on the simulator). */
export interface ManifestTcpView {
  readonly connections: readonly {
    readonly connId: string;
    readonly transport: string;
    readonly client: { readonly address: string; readonly port: number };
    readonly server: { readonly address: string; readonly port: number };
    readonly c2s: { readonly raw: { readonly length: number; readonly sha256: string } };
    readonly s2c: { readonly raw: { readonly length: number; readonly sha256: string } };
  }[];
}

/**
 * Asserts that tshark's `follow,tcp,raw` of every TCP connection in `file` carries exactly the manifest's
 * bytes per direction (length and SHA-256), and that more than `atLeast` TCP connections were checked.
 * `extra`: tshark options (e.g. decode-as).
 */
export function assertTcpMatchesManifest(
  manifest: ManifestTcpView,
  file: string,
  options: { readonly atLeast: number; readonly extra?: readonly string[] },
): void {
  const got = byEndpoints(followStreams(file, { extra: options.extra ?? [] }));
  let tcp = 0;
  for (const c of manifest.connections) {
    if (c.transport !== "tcp") continue;
    tcp++;
    const client = `${c.client.address}|${c.client.port}`;
    const server = `${c.server.address}|${c.server.port}`;
    assert.deepEqual(
      got.get(`${client}>${server}`) ?? { bytes: 0, sha256: "none" },
      { bytes: c.c2s.raw.length, sha256: c.c2s.raw.sha256 },
      `${c.connId} c2s`,
    );
    assert.deepEqual(
      got.get(`${server}>${client}`) ?? { bytes: 0, sha256: "none" },
      { bytes: c.s2c.raw.length, sha256: c.s2c.raw.sha256 },
      `${c.connId} s2c`,
    );
  }
  assert.ok(tcp > options.atLeast, `${tcp} TCP connections checked`);
}
