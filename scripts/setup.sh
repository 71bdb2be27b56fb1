#!/usr/bin/env bash
# Installs everything tcpip's demo and tests need on a fresh Debian machine (run as root for apt).
# dnsmasq-base is the DHCP/DNS server of the DHCP tests: the package without a system service. nftables
# (nft: the TCP loss test and bench) ships a unit it never enables or starts itself; policy-rc.d guards anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=""
  for c in ip:iproute2 ping:iputils-ping arping:iputils-arping tcpdump:tcpdump tshark:tshark curl:curl \
           ssh:openssh-client redis-server:redis-server dnsmasq:dnsmasq-base nft:nftables; do
    command -v "${c%%:*}" >/dev/null 2>&1 || need="$need ${c#*:}"
  done
  if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # redis-server's package ships a service: tests run the binary themselves, so deny every service start
    # during the install (policy-rc.d exit 101), and keep the unit disabled where systemd runs.
    own_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      own_policy=1
    fi
    # shellcheck disable=SC2086
    apt-get install -y -qq $need >/dev/null
    if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
      systemctl disable --now redis-server >/dev/null 2>&1 || true
    fi
  fi
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e '.[test,netns,http,fast]'
