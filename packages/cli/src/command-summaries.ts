/**
 * Each command's one-line summary, apart from its module: `cloudtap --help` lists them without loading the
 * commands (each is imported only when it runs, so a stitch does not load the mesh, gRPC and NATS code).
 */
export const CommandSummary = {
  simulate: "make real TLS/HTTP/DNS traffic on loopback and tap it into CTAP blobs, key logs and a manifest",
  ingest: "turn a pcap/pcapng capture (and its TLS key log) into CTAP blobs in a store",
  inspect: "summarize a blob file or a whole store: records, connections, byte ranges, problems",
  stitch: "stitch the connections of a store back into packets: capture files, VXLAN/GENEVE, PCAP-over-IP",
  up: "run the mesh (nats-server, fetchers, key-broker, stitchers, mirror-egress) as local processes",
  status: "health and counters of every instance of a running mesh (cloudtap up)",
  replay: "run a past window again through a running mesh (cloudtap up), to outputs of its own",
} as const;

export type CommandName = keyof typeof CommandSummary;
