import { STORE_HELP } from "../store-flags.js";

/** The `cloudtap stitch --help` text. */
export const STITCH_USAGE = `cloudtap stitch --source <store> OUTPUT... [--keys <store>] [--credentials FILE] [--keys-credentials FILE] [--prefix P]
                [--variant original|cleartext|both] [--no-embed-keys] [--cleartext-port TLS:CLEAR ...]
                [--since T] [--until T] [--mtu 1500] [--filter RULE ...] [--on-corrupt resync|skip-rest]
                [--no-fin-on-timeout] [--workers auto|N] [--read-ahead SIZE] [--json] [--quiet]
                [--follow [--poll 5s] [--lateness 2m] [--state FILE]]
  OUTPUT, at least one, any number at once:
    --pcap FILE | --pcapng FILE        a capture file (each may be given several times)
    --vxlan HOST[:PORT][,vni=N][,cleartext-vni=N][,mtu=N][,name=S] ...
                                       VXLAN to an NDR (port 4789)
    --geneve HOST[:PORT][,vni=N][,cleartext-vni=N][,mtu=N][,name=S][,options=user+tenant+...] ...
                                       GENEVE (port 6081) with cloudtap metadata options
    --policy FILE                      export policy (JSON): targets, rules, VNIs, rates, pacing, remapping
    --remap-log FILE                   where address mappings are logged (JSON lines; required when remapping)
    --pcap-over-ip [ADDR:]PORT         PCAP-over-IP server (default 127.0.0.1:57012)
      [--pcap-over-ip-clients N]       wait for N clients before stitching
      [--pcap-over-ip-slow block|drop|disconnect]   a client that does not keep up: block (the default
                                       for this one-shot run) waits for it, and drops it only after
                                       --pcap-over-ip-block-timeout (default 30s); drop skips chunks, disconnect
                                       closes it (both counted)
      [--pcap-over-ip-resolution microsecond|nanosecond]   time stamps on the stream (nanosecond: magic
                                       a1b23c4d, read by tshark and Wireshark; default microsecond)
    --out-dir DIR [--out-format pcap|pcapng] [--rotate-size S] [--rotate-time T] [--out-prefix P]
                  [--upload <store> [--upload-credentials FILE]]   rotating capture files (S: 1GiB, T: 1h),
                                       optionally uploaded when complete (FILE: that store's credentials)

  Lists the data blobs of the window (T: ISO 8601, Unix seconds, or -2h), decodes them, orders and
  de-duplicates each connection's bytes across blobs, and writes Ethernet/IP/TCP|UDP packets with correct
  handshakes, sequence numbers, ACKs and checksums. Missing bytes stay visible as sequence jumps.
  --filter rules are ordered, first match wins: "accept port=443", "reject user=*@example.com",
  "accept src=10.0.0.0/8,proto=tcp", "reject any" (keys: user tenant app policy device identity port src dst proto).
  Globs match the whole value; with any rule, a flow whose attribute holds a control character (a newline)
  is refused.
  TLS: key logs are read from <keys>/keys/ (default: the source store). --variant cleartext writes, for each
  connection that decrypts, a TCP flow carrying exactly its decrypted application data, server port mapped
  (443->80, 8443->8080, 465->25, 993->143, 995->110, other TLS ports->80; --cleartext-port 9443:8080 adds to
  the map); flows that are not TLS pass through unchanged. --variant both writes the original flows too.
  A pcapng embeds each original TLS flow's keys in a Decryption Secrets Block before its packets, only keys
  a record of the flow authenticated (a client random logged twice: the secrets that decrypt); --no-embed-keys
  leaves them out. Connections that do not decrypt are named (connection id, flow) in the problems.
  --read-ahead SIZE: from a cloud store, up to 64 blobs are fetched at once, at most SIZE bytes of them
  (default 64MiB), while earlier ones are stitched; from a directory, 2 blobs ahead unless given.
  Modes: every output with keys or decrypted content is created 0600 whatever its format (a cleartext --pcap
  too), and so are --upload objects in a directory store; other outputs follow the umask.
  Tunnels: segments are sized so that every packet fits each target's MTU after encapsulation (the outer
  packet is never fragmented); both directions of a connection share one outer 5-tuple. A target that does
  not receive (port closed, route gone) is counted in the report; the run goes on. The policy's rules route
  flows to targets (first match wins; keys as --filter plus variant=original|cleartext); see the egress
  package README for the policy format. The --vxlan/--geneve targets are added to the policy's.
  Rotating files are named <prefix>-<UTC time of first packet>-<seq>.<ext>, written as .partial and renamed.
  --workers: with one capture file as the only output, connections are sharded over N worker threads by
  connection id and their packets merged by time into the file (auto: 1 below 4 cores, else cores - 1, at
  most 4; 1: one thread). Other outputs, and --on-corrupt skip-rest, run on one thread.
  A damaged blob is reported by name and what of it passes its checksums is used (--on-corrupt resync).
  Every loss (damaged or unreadable blobs and key logs, records out of their blob's time range, late or
  dropped records, reused connection ids, datagrams too large, TLS that did not decrypt) is a named problem.
  --follow: continuous mode. The data (and key) stores are listed every --poll; new blobs are stitched as
  they land, in start-time order within the --lateness window (a blob may land that much after blobs
  that started later); Ctrl-C or SIGTERM stops it, every flow completed and every output flushed.
  --state FILE keeps the run's cursor (written atomically): started again with the same FILE, the run
  goes on where it stopped, also after a kill, and writes nothing twice to --pcap/--pcapng files (other
  outputs may repeat what followed the last checkpoint; see docs/stitching.md). --since is where a run
  without state starts; --until and --out-dir do not go with --follow, which runs on one thread and exits 0
  when stopped by a signal once everything is flushed.
  On a terminal, a progress line on stderr (blobs and bytes of the total, rate, time left); --quiet: none.
  Exit status: 0 when the run completed (its problems are reported, not fatal), 1 on a fatal error (a
  --source or --keys that does not exist included), 130 when interrupted, 2 on a bad command line.
  Cloud sources: --source s3://tap-data/tenant1 --credentials aws.json --keys s3://tap-keys/tenant1
  --keys-credentials aws-keys.json; --source gs://tap-data --credentials sa.json; --source
  azblob://acct/netskope --credentials azure.json.
${STORE_HELP}`;
