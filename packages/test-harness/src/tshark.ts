/**
 * tshark as the judge of what a capture contains. Tests fail loudly (never skip) when it is missing.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";

export function tshark(args: readonly string[]): string {
  try {
    return execFileSync("tshark", args, {
      encoding: "utf8",
      maxBuffer: 2 ** 30,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(
        "tshark is not on PATH: this test needs it. Run ./scripts/bootstrap.sh to install it.",
        {
          cause: err,
        },
      );
    }
    const e = err as { stderr?: string; message: string };
    throw new Error(`tshark ${args.join(" ")} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

export interface FollowedStream {
  readonly stream: number;
  /** "address|port" of tshark's node 0 and node 1 (node 0 sent first, or the first packet's source). */
  readonly nodes: [string, string];
  readonly sha256: [string, string];
  readonly bytes: [number, number];
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

function node(text: string): string {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(text.trim());
  if (m === null) throw new Error(`unexpected tshark node "${text}"`);
  return `${m[1]}|${m[2]}`;
}

export interface FollowOptions {
  /** "tcp" (the stream bytes) or "tls" (decrypted application data; give `keyLogFile` or rely on a DSB). */
  readonly layer?: "tcp" | "tls";
  readonly keyLogFile?: string;
  /** Extra tshark options, e.g. ["-d", "tcp.port==9000,tls"]. */
  readonly extra?: readonly string[];
}

/**
 * tshark's Follow Stream (raw) for every TCP stream of a capture: per stream, both nodes and the SHA-256 and
 * length of what each node sent. In that output each chunk is a line of hex; lines of node 1 start with a tab.
 */
export function followStreams(path: string, options: FollowOptions = {}): FollowedStream[] {
  const layer = options.layer ?? "tcp";
  const prefs = [
    ...(options.keyLogFile ? ["-o", `tls.keylog_file:${options.keyLogFile}`] : []),
    ...(options.extra ?? []),
  ];
  const fields = tshark([
    "-n",
    "-r",
    path,
    ...prefs,
    "-Y",
    "tcp",
    "-T",
    "fields",
    "-E",
    "separator=,",
    "-e",
    "tcp.stream",
    "-e",
    "ip.src",
    "-e",
    "ipv6.src",
    "-e",
    "tcp.srcport",
    "-e",
    "ip.dst",
    "-e",
    "ipv6.dst",
    "-e",
    "tcp.dstport",
  ]);
  const firstPacket = new Map<number, [string, string]>();
  for (const line of fields.split("\n")) {
    if (line.trim() === "") continue;
    const [stream, src4, src6, sport, dst4, dst6, dport] = line.split(",");
    const n = Number(stream);
    if (!firstPacket.has(n)) firstPacket.set(n, [`${src4 || src6}|${sport}`, `${dst4 || dst6}|${dport}`]);
  }
  const ids = [...firstPacket.keys()].sort((a, b) => a - b);
  const streams: FollowedStream[] = [];
  // tshark runs every -z tap in one pass; batches keep the command line reasonable for large captures.
  // tshark runs every -z tap of a batch in one pass and prints them at the end, as hex (twice the bytes):
  // batches bound both the command line and the output held at once.
  for (let i = 0; i < ids.length; i += 100) {
    const batch = ids.slice(i, i + 100);
    const out = tshark([
      "-n",
      "-r",
      path,
      ...prefs,
      "-q",
      ...batch.flatMap((n) => ["-z", `follow,${layer},raw,${n}`]),
    ]);
    for (const section of out.split(/^=+$/m)) {
      const filter = /^Filter: tcp\.stream eq (\d+)$/m.exec(section);
      if (filter === null) continue;
      const stream = Number(filter[1]);
      const node0 = /^Node 0: (.*)$/m.exec(section)?.[1] ?? "";
      const node1 = /^Node 1: (.*)$/m.exec(section)?.[1] ?? "";
      const parts: [Uint8Array[], Uint8Array[]] = [[], []];
      for (const line of section.split("\n")) {
        const m = /^(\t?)([0-9a-f]+)$/.exec(line);
        if (m === null) continue;
        parts[m[1] === "\t" ? 1 : 0].push(Uint8Array.from(Buffer.from(m[2]!, "hex")));
      }
      // tshark leaves a node as ":0" when it sent nothing at this layer (and TLS follow may name only the
      // first sender of decrypted data): complete the pair from the stream's endpoints.
      const ends = firstPacket.get(stream)!;
      const known0 = node0 === "" || node0 === ":0" ? undefined : node(node0);
      const known1 = node1 === "" || node1 === ":0" ? undefined : node(node1);
      const otherOf = (n: string): string => (n === ends[0] ? ends[1] : ends[0]);
      const nodes: [string, string] =
        known0 && known1
          ? [known0, known1]
          : known0
            ? [known0, otherOf(known0)]
            : known1
              ? [otherOf(known1), known1]
              : ends;
      const joined = parts.map((p) => Buffer.concat(p)) as [Buffer, Buffer];
      streams.push({
        stream,
        nodes,
        sha256: [sha256(joined[0]), sha256(joined[1])],
        bytes: [joined[0].length, joined[1].length],
      });
    }
  }
  if (streams.length !== ids.length)
    throw new Error(`tshark printed ${streams.length} follow sections for ${ids.length} streams`);
  return streams.sort((a, b) => a.stream - b.stream);
}

/**
 * Per-direction hashes keyed by "client|port>server|port" so two captures of the same connections can be
 * compared whatever tshark's stream numbering and node order.
 */
export function byEndpoints(
  streams: readonly FollowedStream[],
): Map<string, { bytes: number; sha256: string }> {
  const out = new Map<string, { bytes: number; sha256: string }>();
  for (const s of streams) {
    out.set(`${s.nodes[0]}>${s.nodes[1]}`, { bytes: s.bytes[0], sha256: s.sha256[0] });
    out.set(`${s.nodes[1]}>${s.nodes[0]}`, { bytes: s.bytes[1], sha256: s.sha256[1] });
  }
  return out;
}

export interface ExpertItem {
  readonly severity: string;
  readonly group: string;
  readonly protocol: string;
  readonly summary: string;
  readonly count: number;
}

/** tshark's expert information (`-z expert`), one item per summary line. */
export function expertInfo(path: string, extra: readonly string[] = []): ExpertItem[] {
  const out = tshark(["-n", "-r", path, ...extra, "-q", "-z", "expert"]);
  const items: ExpertItem[] = [];
  if (!/^(Errors|Warns|Warnings|Notes|Chats|Comments) \(\d+\)$/m.test(out) && out.trim() !== "") {
    throw new Error(`unexpected tshark expert output: ${out.slice(0, 200)}`);
  }
  let severity = "";
  for (const line of out.split("\n")) {
    // tshark 4.0 heads the warning section "Warns"; later versions may spell it out.
    const head = /^(Errors|Warns|Warnings|Notes|Chats|Comments) \(\d+\)$/.exec(line.trim());
    if (head) {
      severity = head[1] === "Warns" ? "Warnings" : head[1]!;
      continue;
    }
    const m = /^\s+(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m && severity)
      items.push({ severity, count: Number(m[1]), group: m[2]!, protocol: m[3]!, summary: m[4]!.trim() });
  }
  return items;
}
