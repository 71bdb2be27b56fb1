#!/usr/bin/env bash
# Makes the Python 3.14 with PyTCP 3.0.9 that bench.e2e's PyTCP row runs under: a Debian sid chroot
# (sid's python3 is 3.14) in /opt/tcpip-pytcp (or $1), outside the repository, with PyTCP in a venv at
# /opt/pytcp inside it and a /dev/net/tun node (no mounts: nothing to undo). Idempotent; needs root and
# the Debian and PyPI mirrors. Nothing runs in the chroot but the bench's own server, under `chroot`.
# Remove it with `rm -rf /opt/tcpip-pytcp`.
set -euo pipefail
ROOT="${1:-/opt/tcpip-pytcp}"
VERSION=3.0.9
if [ ! -x "$ROOT/usr/bin/python3" ]; then
    command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
    debootstrap --variant=minbase --include=python3,python3-venv sid "$ROOT" http://deb.debian.org/debian
fi
if [ ! -x "$ROOT/opt/pytcp/bin/python" ]; then
    chroot "$ROOT" python3 -m venv /opt/pytcp
fi
if ! chroot "$ROOT" /opt/pytcp/bin/python -c "import pytcp" 2>/dev/null; then
    # Wheels fetched here with this machine's pip settings (index, proxy, CA), installed there offline
    wheels="$ROOT/tmp/pytcp-wheels"
    rm -rf "$wheels" && mkdir -p "$wheels"
    python3 -m pip download -q --python-version 3.14 --only-binary=:all: "pytcp==$VERSION" -d "$wheels"
    chroot "$ROOT" /opt/pytcp/bin/pip install -q --no-index --find-links /tmp/pytcp-wheels "pytcp==$VERSION"
    rm -rf "$wheels"
fi
mkdir -p "$ROOT/dev/net"
[ -e "$ROOT/dev/net/tun" ] || mknod "$ROOT/dev/net/tun" c 10 200
chroot "$ROOT" /opt/pytcp/bin/python -c "import sys, pytcp; print('PyTCP', '$VERSION', 'on Python', sys.version.split()[0])"
