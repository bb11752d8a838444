/**
 * The Node adapter that opens an `EgressSpec`: capture files, rotating files (with upload), a PCAP-over-IP
 * server, UDP tunnels with the export policy, behind one `Egress`. It also says how many bytes the tunnels
 * add inside the MTU, which the stitcher needs to size segments (in the mesh it reaches the stitcher over
 * the mirror stream). If one output fails to open, the ones already open are aborted.
 */
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { createCaptureFileOutput } from "./capture-file-output.js";
import { createEgress, type Egress } from "./egress.js";
import type { EgressOutput } from "./egress-output.js";
import { type CaptureFileSpec, checkEgressSpec, type EgressSpec, EgressSpecError } from "./egress-spec.js";
import { encapsulationBytesFor } from "./export-policy.js";
import { createPcapOverIpServer, type PcapOverIpServer } from "./pcap-over-ip.js";
import { createRotatingFileOutput, type UploadStore } from "./rotating-file-output.js";
import { createTunnelOutput } from "./tunnel-output.js";
import { createUdpTransport, resolvePolicyAddresses } from "./udp-transport.js";

/** What pcapng section headers name as the writer. */
export const DEFAULT_USER_APPLICATION = "cloudtap stitch";

/** The smallest IP MTU left for the inner packets once the tunnels took their share. */
export const MIN_INNER_MTU = 576;

export interface OpenEgressOptions {
  /** Opens the store that rotated files are uploaded to (the wiring knows the store schemes). */
  readonly openUploadStore?: (url: string) => UploadStore;
  readonly signal?: AbortSignal;
}

export interface OpenedEgress {
  readonly egress: Egress;
  /** What the tunnels add inside the MTU: the stitcher segments to `mtu - encapsulationBytes`. */
  readonly encapsulationBytes: number;
  readonly pcapOverIp: PcapOverIpServer | undefined;
  /** Waits for the spec's PCAP-over-IP clients (if it asks for any) before the first packet. */
  waitForClients(signal?: AbortSignal): Promise<void>;
  /** Flushes and closes every output (and the mapping log). */
  close(): Promise<void>;
  /** Gives up: partial files removed, nothing more sent. */
  abort(): Promise<void>;
}

/** One capture file. With keys or decrypted content it is created 0600 (see CaptureFileOutput). */
export function captureFileOutput(
  file: CaptureFileSpec,
  spec: Pick<EgressSpec, "embedKeys" | "decryptedContent" | "userApplication">,
): EgressOutput {
  const decryptedContent = spec.decryptedContent === true;
  const resume = file.resumeAt === undefined ? {} : { resumeAt: file.resumeAt };
  return file.format === "pcapng"
    ? createCaptureFileOutput({
        path: file.path,
        format: "pcapng",
        embedKeys: spec.embedKeys,
        decryptedContent,
        userApplication: spec.userApplication ?? DEFAULT_USER_APPLICATION,
        ...resume,
      })
    : createCaptureFileOutput({
        path: file.path,
        format: "pcap",
        resolution: "nanosecond",
        decryptedContent,
        ...resume,
      });
}

export async function openEgress(spec: EgressSpec, options: OpenEgressOptions = {}): Promise<OpenedEgress> {
  const { policy } = checkEgressSpec(spec);
  const mtu = spec.mtu ?? 1500;
  const outputs: EgressOutput[] = [];
  let remapLog: WriteStream | undefined;
  let pcapOverIp: PcapOverIpServer | undefined;
  let encapsulationBytes = 0;
  const closeRemapLog = async () => {
    if (!remapLog) return;
    const log = remapLog;
    remapLog = undefined;
    log.end();
    await once(log, "close");
  };
  try {
    for (const file of spec.files ?? []) outputs.push(captureFileOutput(file, spec));
    const rotating = spec.rotating;
    if (rotating) {
      if (rotating.upload !== undefined && !options.openUploadStore)
        throw new EgressSpecError("rotating.upload", "this wiring cannot open stores for upload");
      outputs.push(
        createRotatingFileOutput({
          dir: rotating.dir,
          format: rotating.format,
          prefix: rotating.prefix ?? "cloudtap",
          embedKeys: spec.embedKeys,
          decryptedContent: spec.decryptedContent === true,
          ...(rotating.rotateBytes === undefined ? {} : { rotateBytes: rotating.rotateBytes }),
          ...(rotating.rotateNs === undefined ? {} : { rotateNs: rotating.rotateNs }),
          ...(rotating.upload === undefined
            ? {}
            : { upload: { store: options.openUploadStore!(rotating.upload) } }),
          ...(rotating.format === "pcap" ? { resolution: "nanosecond" as const } : {}),
        }),
      );
    }
    if (spec.pcapOverIp) {
      const { host, port, slowClient, blockTimeoutMs, resolution } = spec.pcapOverIp;
      pcapOverIp = await createPcapOverIpServer({
        host,
        port,
        slowClient,
        ...(blockTimeoutMs === undefined ? {} : { blockTimeoutMs }),
        ...(resolution === undefined ? {} : { resolution }),
      });
      outputs.push(pcapOverIp);
    }
    if (policy.targets.length > 0) {
      options.signal?.throwIfAborted();
      const resolved = await resolvePolicyAddresses(policy);
      encapsulationBytes = encapsulationBytesFor(resolved.targets, mtu);
      if (mtu - encapsulationBytes < MIN_INNER_MTU)
        throw new EgressSpecError(
          "mtu",
          `the tunnels need ${encapsulationBytes} bytes of a ${mtu}-byte link MTU: raise the link MTU or the targets' mtu`,
        );
      const transport = await createUdpTransport({ targets: resolved.targets });
      const log = spec.remapLog === undefined ? undefined : createWriteStream(spec.remapLog, { mode: 0o600 });
      remapLog = log;
      outputs.push(
        createTunnelOutput({
          policy: resolved,
          transport,
          ...(log ? { onMapping: (m) => void log.write(`${JSON.stringify(m)}\n`) } : {}),
        }),
      );
    }
  } catch (err) {
    await Promise.allSettled(outputs.map((o) => o.abort()));
    remapLog?.destroy();
    throw err;
  }
  const egress = createEgress(outputs);
  const waitFor = spec.pcapOverIp?.waitForClients ?? 0;
  return {
    egress,
    encapsulationBytes,
    pcapOverIp,
    async waitForClients(signal) {
      if (pcapOverIp && waitFor > 0) await pcapOverIp.waitForClients(waitFor, signal ? { signal } : {});
    },
    async close() {
      try {
        await egress.close();
      } finally {
        await closeRemapLog();
      }
    },
    async abort() {
      try {
        await egress.abort();
      } finally {
        await closeRemapLog();
      }
    },
  };
}
