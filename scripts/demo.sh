#!/usr/bin/env bash
# The main job on the embedded default: a local directory as the store, simulated traffic, the mesh as local
# processes.
# 1. simulate: real TLS 1.2/1.3, HTTP/1.1, HTTP/2, plain HTTP and DNS traffic on loopback, tapped into CTAP
#    blobs and key logs under demo-output/store (a fresh run each time);
# 2. inspect: read every blob back and report connections, byte coverage and problems;
# 3. up --once: the mesh, each service its own process (nats-server with JetStream, a fetcher, the
#    key-broker, two stitchers, mirror-egress, with mutual TLS between them), drains the store's window into
#    demo-output/mesh.pcapng: the original TLS flows (their keys embedded, so Wireshark decrypts them as they
#    are) and a clear-text twin of each decrypted connection (HTTP readable by any NDR, no keys needed);
# 4. tshark judges the file: HTTP/1.1 requests and HTTP/2 requests it decrypts with the embedded keys, and
#    the same in the clear-text twins; the run fails when there is TLS but no decrypted HTTP. Last, where the
#    file is, what it holds, and where the traces and metrics are.
# With OTEL_EXPORTER_OTLP_ENDPOINT set (e.g. http://127.0.0.1:4318, Jaeger's OTLP port), every service sends
# its spans there.
# Options are passed to `cloudtap simulate` (e.g. --connections 500 --seed 11). With DEMO_STORE=<store>, an
# existing store is used instead of simulated traffic.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
cloudtap() { node packages/cli/bin/cloudtap.mjs "$@"; }
out=demo-output
rm -rf "$out"
mkdir -p "$out"
store="${DEMO_STORE:-}"
if [ -z "$store" ]; then
  store="$out/store"
  cloudtap simulate --out "$store" --connections 200 --seed 7 "$@"
  echo
fi
cloudtap inspect "$store"
echo
cloudtap up --source "$store" --once --variant both --stitchers 2 --pcapng "$out/mesh.pcapng" \
  --state-dir "$out/mesh-state"

pcap="$PWD/$out/mesh.pcapng"
echo
echo "tshark on $out/mesh.pcapng (it decrypts the original TLS flows with the keys embedded in the file):"
# One pass, one count per filter (io,stat over the whole file): TCP connections, TLS ClientHellos, HTTP/1.1
# requests inside TLS and in the clear, HTTP/2 requests inside TLS and in the clear, DNS queries.
read -r syns hellos h1tls h1clear h2tls h2clear dnsq < <(
  tshark -r "$pcap" -q -z io,stat,0,"tcp.flags.syn==1 && tcp.flags.ack==0","tls.handshake.type==1",\
"http.request && tls","http.request && !tls","http2.headers.method && tls","http2.headers.method && !tls",\
"dns.flags.response==0" 2> >(grep -v '^Running as user' >&2) | awk -F'|' '/<>/ { for (i = 3; i < NF; i += 2) printf "%d ", $i; print "" }'
)
echo "  HTTP/1.1 requests: $h1tls decrypted inside TLS by the embedded keys, $h1clear in clear-text flows"
echo "  HTTP/2 requests:   $h2tls decrypted inside TLS by the embedded keys, $h2clear in clear-text flows"
echo "  TCP connections:   $syns ($hellos TLS handshakes); DNS queries: $dnsq"
if [ "$hellos" -gt 0 ] && [ $((h1tls + h2tls)) -eq 0 ]; then
  echo "demo: FAILED: $hellos TLS connections and no HTTP that tshark could decrypt" >&2
  exit 1
fi
read -r packets size < <(capinfos -M -c -s "$pcap" | awk -F': *' '/^Number of packets/ { p = $2 } /^File size/ { s = $2 + 0 } END { print p, s }')
echo
echo "output:  $pcap ($packets packets, $size bytes)"
echo "  holds: every tapped connection as it was captured (TLS still encrypted; its session keys embedded in"
echo "         the pcapng, so Wireshark and tshark decrypt it as it is), plain HTTP and DNS, and a clear-text"
echo "         twin of each decrypted TLS connection (its HTTP as plain TCP, 443 -> 80, 8443 -> 8080)"
echo "  open:  wireshark $out/mesh.pcapng   or   tshark -r $out/mesh.pcapng -Y http.request"
if [ -n "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ]; then
  echo "traces:  sent to $OTEL_EXPORTER_OTLP_ENDPOINT (in Jaeger: service fetcher, operation \"fetcher blob\")"
else
  echo "traces:  off; run Jaeger (README, \"Traces and metrics\") and OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 $0"
fi
echo "metrics: $out/mesh-state/metrics/*.prom (each service's last scrape); live on each service's /metrics"
echo "         while a mesh runs (\`pnpm cloudtap up\` without --once prints them; also in mesh.json)"
