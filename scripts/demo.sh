#!/usr/bin/env bash
# The main job on the embedded default: a local directory as the store, simulated traffic.
# 1. simulate: real TLS 1.2/1.3, HTTP/1.1, HTTP/2, plain HTTP and DNS traffic on loopback, tapped into CTAP
#    blobs and key logs under demo-output/store (a fresh run each time);
# 2. inspect: read every blob back and report connections, byte coverage and problems;
# 3. stitch: rebuild every connection into packets in demo-output/stitched.pcapng, the original TLS flows
#    (their keys embedded, so Wireshark decrypts them as they are) and a clear-text twin of each decrypted
#    connection (HTTP readable by any NDR, no keys needed).
# Options are passed to `cloudtap simulate` (e.g. --connections 500 --seed 11).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
cloudtap() { node packages/cli/bin/cloudtap.mjs "$@"; }
out=demo-output
rm -rf "$out"
mkdir -p "$out"
cloudtap simulate --out "$out/store" --connections 200 --seed 7 "$@"
echo
cloudtap inspect "$out/store"
echo
cloudtap stitch --source "$out/store" --pcapng "$out/stitched.pcapng" --variant both
