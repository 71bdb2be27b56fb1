#!/usr/bin/env bash
# Installs everything tcpip's demo and tests need on a fresh Debian machine (run as root for apt).
# dnsmasq-base is the DHCP/DNS server of the DHCP tests: the package without a system service.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=""
  for c in ip:iproute2 ping:iputils-ping arping:iputils-arping tcpdump:tcpdump tshark:tshark curl:curl dnsmasq:dnsmasq-base; do
    command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c#*:}"
  done
  if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $need >/dev/null
  fi
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test,netns,http]'
