"""asyncssh over tcpip, unchanged: an asyncssh server on a StackLoop (host key made in the test) that the
kernel's OpenSSH client logs into with a key, runs a command, and streams 1 MB through, both directions."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import asyncssh
import pytest
from loop_support import STACK_IP, Kernel, stack_runner

pytestmark = pytest.mark.tap
MB = os.urandom(1 << 20)


def ssh_argv(key: Path, command: str) -> list[str]:
    return ["ssh", "-F", "/dev/null", "-i", str(key), "-p", "8022", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10", f"tester@{STACK_IP}", command]


async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
    cmd = process.command or ""
    if cmd == "hello":
        process.stdout.write(f"hello {process.get_extra_info('username')} from tcpip\n".encode())
    elif cmd == "sink":  # read stdin to EOF, answer its size and digest
        h, n = hashlib.sha256(), 0
        while chunk := await process.stdin.read(65536):
            h.update(chunk)
            n += len(chunk)
        process.stdout.write(f"{n} {h.hexdigest()}\n".encode())
    elif cmd == "source":
        process.stdout.write(MB)
    else:
        process.stderr.write(b"unknown command\n")
        process.exit(127)
        return
    process.exit(0)


def test_kernel_ssh_logs_into_asyncssh_on_tcpip(kernel: Kernel) -> None:
    key = kernel.tmp / "id_ed25519"
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key.write_private_key(str(key))
    key.chmod(0o600)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

    async def main() -> list[tuple[int, bytes]]:
        server = await asyncssh.listen("", 8022, server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
                                       authorized_client_keys=authorized, process_factory=handle, encoding=None)
        try:
            out = []
            for command, data in (("hello", None), ("sink", MB), ("source", None), ("nope", None)):
                r = await kernel.arun(ssh_argv(key, command), input=data, timeout=60)
                out.append((r.returncode, r.stdout if r.returncode == 0 else r.stderr))
            return out
        finally:
            server.close()
            await server.wait_closed()

    with stack_runner(kernel) as r:
        hello, sink, source, nope = r.run(main())
    assert hello == (0, b"hello tester from tcpip\n")
    assert sink == (0, f"{len(MB)} {hashlib.sha256(MB).hexdigest()}\n".encode())
    assert source[0] == 0
    assert hashlib.sha256(source[1]).digest() == hashlib.sha256(MB).digest()
    assert nope == (127, b"unknown command\n")
