"""Coverage-guided fuzzing of tcpip's TCP input with atheris (libFuzzer for Python); not run in CI.

Each input is a sequence of TCP segments, each prefixed by a 1-byte target (even: the listener, from an
attacker address; odd: an established victim connection, whose seq/ack fields are taken as offsets from
its own numbers) and a 2-byte length. A transfer runs beside them on the same TcpLayer. Checked: nothing
raises, every segment moves at most one outcome counter, the transfer arrives byte-identical.

    pip install atheris
    python3 fuzz/atheris_tcp.py --write-seeds /tmp/tcp-corpus     # seeds from tests/fuzz/corpus_tcp
    python3 fuzz/atheris_tcp.py -atheris_runs=100000 /tmp/tcp-corpus

A crash leaves `crash-<sha1>`; replay it with `python3 fuzz/atheris_tcp.py crash-<sha1>` and add the
segment to tests/fuzz/corpus_tcp/ (`listener|victim HEX`) so CI replays it.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

with atheris.instrument_imports(include=["tcpip"]):
    import tcpip.core.tcp.layer  # noqa: F401

import tcp_fuzz_support as tf

MAX_SEGMENTS = 12


def split(data: bytes) -> list[tuple[int, bytes]]:
    out, i = [], 0
    while i + 3 <= len(data) and len(out) < MAX_SEGMENTS:
        target, n = struct.unpack_from("!BH", data, i)
        out.append((target, data[i + 3:i + 3 + n]))
        i += 3 + n
    return out


def test_one_input(data: bytes) -> None:
    link = tf.Link()
    s, c = link.connect(tf.TRANSFER_PORT)
    victim, _ = link.connect(tf.VICTIM_PORT)
    transfer = tf.Transfer(link, s, c, bytes(range(256)) * 200)
    for target, raw in split(data):
        transfer.step()
        b = bytearray(raw)
        src = tf.ATTACKER if target % 2 == 0 else tf.CLIENT
        if target % 2 and len(b) >= 12:
            seq, ack = struct.unpack_from("!II", b, 4)
            struct.pack_into("!HHII", b, 0, tf.VICTIM_PORT, victim.local_port,
                             (seq + victim.rcvbuf.rcv_nxt) & 0xFFFFFFFF, (ack + victim.snd_una) & 0xFFFFFFFF)
        if len(b) >= 20 and target & 2:  # half the time a valid checksum, to get past verification
            off = min(max((b[12] >> 4) * 4, 20), len(b))
            hdr = b[:off]
            tf.fill_checksum(hdr, src, tf.SERVER, bytes(b[off:]))
            b[:off] = hdr
        tf.inject(link.server, bytes(b), link.now, src=src)
    if transfer.finish() != transfer.data:
        raise AssertionError("the transfer beside the fuzzing was corrupted")


def write_seeds(directory: str) -> None:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for name, target, raw in tf.corpus():
        t = (0 if target == "listener" else 1) | 2
        (d / name).write_bytes(struct.pack("!BH", t, len(raw)) + raw)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        write_seeds(sys.argv[2])
    else:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
