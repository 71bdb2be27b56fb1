"""Coverage-guided fuzzing of tcpip's input path with atheris (libFuzzer for Python).

Each input is a short sequence of Ethernet frames, each prefixed by its 2-byte big-endian length, fed into
a fresh `Interface` (with UDP and an echo service on port 7) so that ARP, reassembly and ICMP state can be
reached. After each frame: nothing may raise, `unbalanced(...)` must be [], and every frame the stack
emits must pass tests/fuzz/fuzz_support.check_emitted (scapy parses it, checksums recompute with scapy's
own code, ICMP errors obey RFC 1122). At the end the interface must still answer a ping.

    pip install atheris
    python3 fuzz/atheris_input.py --write-seeds /tmp/tcpip-corpus   # binary seeds from tests/fuzz/corpus
    python3 fuzz/atheris_input.py -atheris_runs=200000 /tmp/tcpip-corpus

A failure leaves `crash-<sha1>` in the current directory; `python3 fuzz/atheris_input.py crash-<sha1>`
replays it. Add the frames to tests/fuzz/corpus (as .hex) so CI replays them from then on.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))

with atheris.instrument_imports(include=["tcpip"]):
    import tcpip.core.arp
    import tcpip.core.interface
    import tcpip.core.reassembly
    import tcpip.core.udp  # noqa: F401

import fuzz_support as fs

MAX_FRAMES = 16


def split(data: bytes) -> list[bytes]:
    """The frames of one input: [len16][bytes] records; a short tail is one more (raw) frame."""
    out, i = [], 0
    while i + 2 <= len(data) and len(out) < MAX_FRAMES:
        (n,) = struct.unpack_from("!H", data, i)
        out.append(data[i + 2:i + 2 + n])
        i += 2 + n
    if i < len(data) and len(out) < MAX_FRAMES:
        out.append(data[i:])
    return out


def join(frames: list[bytes]) -> bytes:
    return b"".join(struct.pack("!H", len(f)) + f for f in frames)


def test_one_input(data: bytes) -> None:
    iface, _ = fs.make_iface()
    now = 1.0
    for frame in split(data):
        iface.receive(memoryview(frame), now)
        at = iface.poll_at()
        if at is not None and at <= now:
            iface.handle_timeout(now)
        iface.loopback_input(now)
        for out in fs.frames_of(iface.tx):
            fs.check_emitted(out)
        iface.tx.clear()
        bad = fs.balanced(iface)
        if bad:
            raise AssertionError(f"unbalanced: {bad}")
        now += 0.25
    iface.handle_timeout(now + 40.0)  # reassembly timeouts: the Time Exceeded quotes are checked too
    for out in fs.frames_of(iface.tx):
        fs.check_emitted(out)
    if not fs.ping_answered(iface, now + 41.0):
        raise AssertionError("no longer answers a ping")


def write_seeds(where: Path) -> None:
    where.mkdir(parents=True, exist_ok=True)
    corpus = fs.load_corpus()
    for name, frame in corpus.items():
        (where / name.replace(":", "_")).write_bytes(join([frame]))
    s = fs.seed_frames()
    sets = {
        "seq_fragments": [s["frag_first"], s["frag_middle"], s["frag_last"]],
        "seq_fragments_reversed": [s["frag_last"], s["frag_middle"], s["frag_first"]],
        "seq_overlap": [s["frag_overlap_a"], s["frag_overlap_b"]],
        "seq_arp_then_echo": [s["arp_request"], s["icmp_echo"], s["udp_echo"]],
        "seq_frag_needed_then_echo": [s["icmp_frag_needed"], s["arp_request"], s["icmp_echo"]],
    }
    for name, frames in sets.items():
        (where / name).write_bytes(join(frames))
    print(f"wrote {len(corpus) + len(sets)} seeds to {where}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        write_seeds(Path(sys.argv[2]))
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
