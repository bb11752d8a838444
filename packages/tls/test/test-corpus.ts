/**
 * Test-only helpers for the interop corpus in ../shared/testdata/tls (README there): locating it, reading
 * TCP streams out of a capture with tshark, and the key log embedded in a pcapng Decryption Secrets Block.
 * Not part of the package's API.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { corpusDir } from "@cloudtap/test-harness";

const run = promisify(execFile);

/** The corpus folder, found by the test harness (beside this checkout or the one it was cloned from). */
export const CORPUS_DIR = pathToFileURL(corpusDirOrEmpty());

function corpusDirOrEmpty(): string {
  try {
    return corpusDir();
  } catch {
    return "/nonexistent-cloudtap-corpus/";
  }
}

/** Throws an error that says what is missing and where it was looked for. */
export function requireCorpus(): void {
  corpusDir();
}

let tsharkChecked: Promise<void> | undefined;

export function requireTshark(): Promise<void> {
  tsharkChecked ??= run("tshark", ["--version"]).then(
    () => undefined,
    (err: unknown) => {
      throw new Error("tshark is not installed or not on PATH: run ./scripts/bootstrap.sh", { cause: err });
    },
  );
  return tsharkChecked;
}

export interface ManifestCapture {
  readonly id: string;
  readonly file: string;
  readonly keylog: string | null;
}

export function readManifest(): ManifestCapture[] {
  const manifest = JSON.parse(readFileSync(new URL("manifest.json", CORPUS_DIR), "utf8")) as {
    captures: ManifestCapture[];
  };
  return manifest.captures;
}

export interface ExpectedDirection {
  readonly bytes: number;
  readonly sha256: string;
}

export interface ExpectedStream {
  readonly tcp_stream: number;
  readonly client: string;
  readonly server: string;
  readonly server_hello?: readonly { readonly version: string; readonly cipher_suite: string }[];
  readonly c2s: ExpectedDirection;
  readonly s2c: ExpectedDirection;
}

export function readExpected(captureFile: string): ExpectedStream[] {
  const name = captureFile.split("/").pop()!;
  const text = readFileSync(new URL(`expected/${name}.expected.json`, CORPUS_DIR), "utf8");
  return (JSON.parse(text) as { streams: ExpectedStream[] }).streams;
}

export interface TcpSegment {
  /** 0 = the stream's "Node 0", 1 = "Node 1". */
  readonly node: 0 | 1;
  readonly bytes: Uint8Array;
}

export interface FollowedStream {
  /** Endpoints as tshark prints them, IPv6 brackets removed: "::1:443", "10.0.0.1:5000". */
  readonly nodes: readonly [string, string];
  readonly segments: readonly TcpSegment[];
}

/**
 * The payload of the given TCP streams, segment by segment in capture order, from
 * `tshark -q -z follow,tcp,raw,N` (hex per segment; Node 1's lines are indented with a tab).
 */
export async function followTcpStreams(
  capture: string,
  streams: readonly number[],
): Promise<Map<number, FollowedStream>> {
  const args = ["-n", "-r", capture, "-q"];
  for (const n of streams) args.push("-z", `follow,tcp,raw,${n}`);
  const { stdout } = await run("tshark", args, { maxBuffer: 256 * 1024 * 1024 });
  const out = new Map<number, FollowedStream>();
  let stream: number | undefined;
  let nodes: [string, string] = ["", ""];
  let segments: TcpSegment[] = [];
  const flush = () => {
    if (stream !== undefined) out.set(stream, { nodes, segments });
    stream = undefined;
  };
  for (const line of stdout.split("\n")) {
    const filter = /^Filter: tcp\.stream eq (\d+)/.exec(line);
    if (filter) {
      flush();
      stream = Number(filter[1]);
      nodes = ["", ""];
      segments = [];
      continue;
    }
    const node = /^Node ([01]): (.*)$/.exec(line);
    if (node) {
      nodes[Number(node[1])] = node[2]!.replace(/^\[([^\]]*)\]/, "$1");
      continue;
    }
    if (stream === undefined) continue;
    const hex = /^(\t?)([0-9a-f]+)$/.exec(line);
    if (hex) segments.push({ node: hex[1] ? 1 : 0, bytes: Buffer.from(hex[2]!, "hex") });
  }
  flush();
  return out;
}

const DSB_BLOCK = 0x0000000a;
const SECTION_HEADER_BLOCK = 0x0a0d0d0a;
const TLS_KEY_LOG = 0x544c534b;

/** The TLS key logs of every Decryption Secrets Block of a pcapng file, concatenated. */
export function pcapngTlsKeyLog(file: Uint8Array): string {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let little = true;
  let pos = 0;
  let text = "";
  while (pos + 12 <= file.length) {
    let type = view.getUint32(pos, little);
    if (type === SECTION_HEADER_BLOCK || view.getUint32(pos, !little) === SECTION_HEADER_BLOCK) {
      little = view.getUint32(pos + 8, true) === 0x1a2b3c4d;
      type = SECTION_HEADER_BLOCK;
    }
    const length = view.getUint32(pos + 4, little);
    if (length < 12 || pos + length > file.length)
      throw new Error(`bad pcapng block length ${length} at ${pos}`);
    if (type === DSB_BLOCK && view.getUint32(pos + 8, little) === TLS_KEY_LOG) {
      const secretsLength = view.getUint32(pos + 12, little);
      text += new TextDecoder().decode(file.subarray(pos + 16, pos + 16 + secretsLength));
      if (!text.endsWith("\n")) text += "\n";
    }
    pos += length;
  }
  return text;
}

/** "::1:50159" or "10.0.0.1:5000" */
export function sameEndpoint(a: string, b: string): boolean {
  return a.replace(/^\[([^\]]*)\]/, "$1") === b.replace(/^\[([^\]]*)\]/, "$1");
}
