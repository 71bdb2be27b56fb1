"""PcapWriter: a device middleware writing classic pcap; its files read back, in scapy and in tshark."""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tcpip import Stack
from tcpip.errors import MessageTooLongError
from tcpip.netif.hub import Hub
from tcpip.netif.pcap import PcapWriter, read_pcap


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def tshark_problems(path: Path) -> list[str]:
    """Errors, and Malformed/Checksum expert infos at any level, with IP/UDP checksum checks on."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    p = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
         "-q", "-z", "expert,chat"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert p.returncode == 0, p.stderr
    problems, severity = [], ""
    for line in p.stdout.splitlines():
        head = re.match(r"^(Errors|Warns|Notes|Chats|Comments) \(\d+\)", line)
        if head:
            severity = head.group(1)
            continue
        m = re.match(r"^\s+(\d+)\s+(\S+)\s+(\S+)\s+(.*)$", line)
        if m and (severity == "Errors" or m.group(2) in ("Malformed", "Checksum")):
            problems.append(line.strip())
    return problems


def test_global_header_is_classic_pcap_ethernet() -> None:
    buf = io.BytesIO()
    hub = Hub()
    w = PcapWriter(hub.port(), buf, clock=FakeClock(), epoch=0.0)
    w.close()
    assert buf.getvalue() == struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


async def test_records_both_directions_and_reads_back() -> None:
    hub = Hub()
    a, b = hub.port(), hub.port()
    clock = FakeClock(50.0)
    buf = io.BytesIO()
    w = PcapWriter(a, buf, clock=clock, epoch=1_700_000_000.0)
    got: list[bytes] = []
    w.attach(lambda f: got.append(bytes(f)))
    b.attach(lambda f: None)
    out = bytes.fromhex("ffffffffffff") + bytes(a.mac) + b"\x88\xb5" + b"hello" + bytes(41)
    clock.t = 50.25
    w.transmit([out[:14], out[14:]])  # scatter-gather parts are concatenated
    clock.t = 50.5
    back = bytes(a.mac) + bytes(b.mac) + b"\x88\xb5" + b"world" + bytes(41)
    b.transmit([back])
    await asyncio.sleep(0)
    assert got == [back]
    w.close()
    assert buf.closed is False  # a file object passed in is flushed, not closed
    linktype, recs = read_pcap(io.BytesIO(buf.getvalue()))
    assert linktype == 1
    assert [r.data for r in recs] == [out, back]
    assert [r.orig_len for r in recs] == [60, 60]
    assert recs[0].timestamp == pytest.approx(1_700_000_000.25)
    assert recs[1].timestamp == pytest.approx(1_700_000_000.5)


def test_timestamps_never_go_backwards() -> None:
    clock = FakeClock(10.0)
    buf = io.BytesIO()
    w = PcapWriter(Hub().port(), buf, clock=clock, epoch=0.0)
    for t in (10.5, 10.2, 11.0, 9.0):
        clock.t = t
        w.record([bytes(60)])
    w.close()
    ts = [r.timestamp for r in read_pcap(io.BytesIO(buf.getvalue()))[1]]
    assert ts == pytest.approx([0.5, 0.5, 1.0, 1.0])


def test_snaplen_truncates_but_keeps_original_length() -> None:
    buf = io.BytesIO()
    w = PcapWriter(Hub(mtu=9000).port(), buf, clock=FakeClock(), snaplen=100)
    w.record([bytes(range(256)) * 2, b"x" * 500])
    w.close()
    (rec,) = read_pcap(io.BytesIO(buf.getvalue()))[1]
    assert rec.orig_len == 1012
    assert rec.data == (bytes(range(256)) * 2)[:100]


def test_refused_frames_are_not_recorded() -> None:
    buf = io.BytesIO()
    w = PcapWriter(Hub().port(), buf, clock=FakeClock())
    with pytest.raises(MessageTooLongError):
        w.transmit([bytes(1515)])
    assert w.frames_written == 0


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(("magic", "scale"), [(0xA1B2C3D4, 1e-6), (0xA1B23C4D, 1e-9)])
def test_read_pcap_handles_byte_orders_and_nanoseconds(endian: str, magic: int, scale: float) -> None:
    raw = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    raw += struct.pack(endian + "IIII", 7, 500, 3, 60) + b"abc"
    _, (rec,) = read_pcap(io.BytesIO(raw))
    assert rec.data == b"abc"
    assert rec.orig_len == 60
    assert rec.timestamp == pytest.approx(7 + 500 * scale)


@pytest.mark.parametrize("cut", [0, 10, 24 + 8, 24 + 16 + 1])
def test_read_pcap_rejects_truncated_files(cut: int) -> None:
    raw = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + struct.pack("<IIII", 0, 0, 4, 4) + b"abcd"
    with pytest.raises(ValueError, match="pcap"):
        read_pcap(io.BytesIO(raw[:cut] if cut else b"\x00" * 24))


async def test_two_stack_exchange_decodes_cleanly(tmp_path: Path) -> None:
    """ARP, ICMP echo and UDP between two stacks on a hub, recorded with PcapWriter: scapy reads the
    same frames; tshark finds nothing malformed and no bad checksum."""

    path = tmp_path / "hub.pcap"
    hub = Hub()
    w = PcapWriter(hub.port(), path)
    async with await Stack.connect(w, ipv4="198.18.0.2/24") as a, \
            await Stack.connect(hub.port(), ipv4="198.18.0.1/24") as b:
        await a.udp_echo(7)
        assert all(t is not None for t in await b.ping("198.18.0.2", count=2, interval=0.01))
        assert all(t is not None for t in await a.ping("198.18.0.1", count=1))

        class Got(asyncio.DatagramProtocol):
            def __init__(self) -> None:
                self.q: asyncio.Queue[bytes] = asyncio.Queue()

            def datagram_received(self, data: bytes, addr: object) -> None:
                self.q.put_nowait(data)

        tr, proto = await b.create_datagram_endpoint(Got, local_addr=("0.0.0.0", 5000))
        for n in (1, 512, 1472):
            tr.sendto(bytes(n), ("198.18.0.2", 7))
            assert await asyncio.wait_for(proto.q.get(), 1) == bytes(n)
        tr.close()
    # disconnect flushed and closed the file
    _, recs = read_pcap(path)
    assert len(recs) == w.frames_written >= 12
    stamps = [r.timestamp for r in recs]
    assert stamps == sorted(stamps)
    scapy = pytest.importorskip("scapy.all")
    pkts = scapy.rdpcap(str(path))
    assert [bytes(p) for p in pkts] == [r.data for r in recs]
    assert sum(1 for p in pkts if p.haslayer(scapy.UDP) and p[scapy.UDP].dport == 7) == 3
    assert tshark_problems(path) == []


def test_tshark_oracle_catches_bad_checksums(tmp_path: Path) -> None:
    """The oracle itself: a frame with a wrong IPv4 header checksum is reported."""
    path = tmp_path / "bad.pcap"
    ip = bytearray.fromhex("450000200001000040110000c6120001c6120002") + bytes.fromhex("0001000700080000") + bytes(4)
    frame = bytes(6) + bytes.fromhex("020000000001") + b"\x08\x00" + ip + bytes(14)
    with open(path, "wb") as f:
        w = PcapWriter(Hub().port(), f, clock=FakeClock())
        w.record([frame])
        w.close()
    assert any("Checksum" in p for p in tshark_problems(path))


def test_frames_dropped_by_a_full_queue_are_not_recorded() -> None:
    """A frame the device counted as dropped (EAGAIN on a TAP) never left: it is not in the capture."""
    from collections.abc import Sequence

    from tcpip.netif.device import BaseDevice, Buffer
    from tcpip.wire.mac import MacAddress

    class Full(BaseDevice):
        def _send(self, parts: Sequence[Buffer], size: int) -> None:
            if parts[0][0] == 0xEE:
                self.stats.tx_dropped += 1
            else:
                self.stats.tx_frames += 1

    buf = io.BytesIO()
    w = PcapWriter(Full(MacAddress("02:00:00:00:00:01"), 1500), buf)
    w.transmit((b"\x11" * 60,))
    w.transmit((b"\xee" * 60,))
    w.transmit((b"\x22" * 60,))
    w.flush()
    recs = read_pcap(io.BytesIO(buf.getvalue()))[1]
    assert [r.data[:1] for r in recs] == [b"\x11", b"\x22"]
