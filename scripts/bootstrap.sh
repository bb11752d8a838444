#!/usr/bin/env bash
# Installs what cloudtap needs on a fresh Debian/Ubuntu machine with Node >= 20, and nothing that is already there:
# pnpm, the workspace's packages, the Debian packages the tests and benchmarks use as judges and peers
# (tshark, tcpdump, nats-server, iproute2, iperf3, tcpreplay), and a toolchain for the native parts (g++, make,
# python3). Safe to run again; it is quiet when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

need_node_major=20
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt "$need_node_major" ]; then
  echo "cloudtap needs Node >= $need_node_major (found: $(node -v 2>/dev/null || echo none))" >&2
  exit 1
fi

if ! command -v pnpm >/dev/null 2>&1; then
  echo "bootstrap: installing pnpm" >&2
  npm install -g pnpm >/dev/null 2>&1 || { echo "bootstrap: 'npm install -g pnpm' failed" >&2; exit 1; }
fi

apt_missing=()
command -v tshark >/dev/null 2>&1 || apt_missing+=(tshark)
command -v tcpdump >/dev/null 2>&1 || apt_missing+=(tcpdump)
command -v nats-server >/dev/null 2>&1 || apt_missing+=(nats-server)
# Peers the egress benchmark measures against, and the tools its tests use to build network namespaces.
command -v iperf3 >/dev/null 2>&1 || apt_missing+=(iperf3)
command -v tcpreplay >/dev/null 2>&1 || apt_missing+=(tcpreplay)
command -v ip >/dev/null 2>&1 || apt_missing+=(iproute2)
# node-gyp builds the native parts at install (CRC-32, TLS record opening, the UDP sender): a C/C++ toolchain
# and python3. Without them the packages fall back to node's own (slower) paths.
command -v g++ >/dev/null 2>&1 || apt_missing+=(g++)
command -v make >/dev/null 2>&1 || apt_missing+=(make)
command -v python3 >/dev/null 2>&1 || apt_missing+=(python3)
# The mesh's private CA and service certificates (cloudtap up) are made with openssl.
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
# The deploy test validates every compose file with `docker compose config` (the plugin) or, without it,
# Debian's docker-compose; neither needs a running Docker engine.
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || apt_missing+=(docker-compose)
if [ "${#apt_missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${apt_missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # Wireshark asks whether non-root users may capture; answer "no" up front so the install never prompts.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections
  echo "iperf3 iperf3/start_daemon boolean false" | $sudo debconf-set-selections
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null || true
  $sudo apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

# Suricata 7 judges the cleartext output (integration-tests/src/suricata.test.ts). Bookworm ships 6; its
# backports have 7: the bookworm-backports source is added when missing (on the mirror the machine's own
# bookworm source names), and suricata installed from it, only when suricata is absent.
if ! command -v suricata >/dev/null 2>&1 && grep -qs '^VERSION_CODENAME=bookworm' /etc/os-release; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
    if [ -n "$mirror" ]; then
      echo "bootstrap: adding the bookworm-backports source" >&2
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" |
        $sudo tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null
    fi
  fi
  echo "bootstrap: installing suricata from bookworm-backports" >&2
  $sudo apt-get update -qq >/dev/null || true
  $sudo apt-get install -y -qq -t bookworm-backports suricata >/dev/null
fi

if [ ! -d node_modules/.pnpm ] || [ pnpm-lock.yaml -nt node_modules/.modules.yaml ]; then
  echo "bootstrap: installing workspace packages" >&2
  pnpm install --frozen-lockfile --reporter=silent
fi
