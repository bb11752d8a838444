#!/usr/bin/env bash
# The main job on the embedded default: a local directory as the store, simulated traffic, the mesh as local
# processes.
# 1. simulate: real TLS 1.2/1.3, HTTP/1.1, HTTP/2, plain HTTP and DNS traffic on loopback, tapped into CTAP
#    blobs and key logs under demo-output/store (a fresh run each time);
# 2. inspect: read every blob back and report connections, byte coverage and problems;
# 3. up --once: the mesh, each service its own process (nats-server with JetStream, a fetcher, the
#    key-broker, two stitchers, mirror-egress, with mutual TLS between them), drains the store's window into
#    demo-output/mesh.pcapng: the original TLS flows (their keys embedded, so Wireshark decrypts them as they
#    are) and a clear-text twin of each decrypted connection (HTTP readable by any NDR, no keys needed).
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
