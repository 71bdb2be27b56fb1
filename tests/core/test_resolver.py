"""DNS stub resolver on virtual time: answers, CNAME chains, errors as gaierror, retries and server rotation,
the TTL cache, static hosts, truncation, and spoofed replies counted and ignored without poisoning the cache."""

from __future__ import annotations

import random
import socket
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcpip.core.resolver import DnsOutgoing, QueryHandle, Resolver, ResolverConfig, ResolverStats, parse_hosts
from tcpip.errors import (
    NameNotFoundError,
    NoAddressError,
    ResolveTimeoutError,
    ResolveTruncatedError,
    ServerFailureError,
)
from tcpip.wire.dns import AA, QR, RA, RD, TC, DnsMessage, Question, Rcode, Record, RType


def ip(s: str) -> int:
    return int(IPv4Address(s))


NS1, NS2 = ip("198.18.0.53"), ip("198.18.0.54")
WWW = ip("198.18.0.80")
EVIL = ip("198.18.6.66")


def answer(q: DnsOutgoing, *records: Record, rcode: int = 0, flags: int = QR | RD | RA | AA,
           question: Question | None = None, id_: int | None = None) -> bytes:
    m = DnsMessage.parse(q.payload)
    return DnsMessage(m.id if id_ is None else id_, flags | rcode,
                      (question or m.questions[0],), tuple(records)).emit()


def a(name: str, addr: int, ttl: int = 300) -> Record:
    return Record(name, RType.A, ttl, addr)


def cname(name: str, target: str, ttl: int = 300) -> Record:
    return Record(name, RType.CNAME, ttl, target)


@pytest.fixture
def res() -> Resolver:
    return Resolver([NS1, NS2], random.Random(5), hosts={"gateway.lan": [ip("198.18.0.1")]})


def one(r: Resolver) -> DnsOutgoing:
    out = r.poll_transmit()
    assert len(out) == 1, out
    return out[0]


def feed(r: Resolver, q: DnsOutgoing, payload: bytes, now: float = 0.1) -> list[QueryHandle]:
    return r.receive(memoryview(payload), q.dst_ip, 53, q.src_port, now)


def test_simple_lookup(res: Resolver) -> None:
    h = res.query("www.test", 0.0)
    assert not h.done
    q = one(res)
    assert (q.dst_ip, q.dst_port, q.src_port) == (NS1, 53, h.port)
    assert h.port >= 1024
    m = DnsMessage.parse(q.payload)
    assert (m.questions, m.flags & RD, m.is_response) == ((Question("www.test"),), RD, False)
    assert m.edns is not None
    assert m.edns.udp_payload == 1232
    done = feed(res, q, answer(q, a("www.test", WWW, 60), a("www.test", WWW + 1, 30)))
    assert done == [h]
    assert (h.done, h.addresses, h.canonical_name, h.ttl, h.error) == (True, (WWW, WWW + 1), "www.test", 30, None)
    assert res.poll_at() is None


def test_ids_and_ports_are_random_and_fresh_per_lookup(res: Resolver) -> None:
    seen = set()
    for i in range(20):
        res.query(f"h{i}.test", 0.0)
        q = one(res)
        seen.add((DnsMessage.parse(q.payload).id, q.src_port))
    assert len({i for i, _ in seen}) > 15
    assert len({p for _, p in seen}) == 20


def test_cname_chain_in_one_answer(res: Resolver) -> None:
    h = res.query("Alias.Test.", 0.0)
    q = one(res)
    assert DnsMessage.parse(q.payload).questions[0].name == "Alias.Test"
    feed(res, q, answer(q, cname("alias.test", "mid.test", 100), cname("mid.test", "www.test", 50),
                        a("www.test", WWW, 200), a("other.test", EVIL)))
    assert (h.addresses, h.canonical_name.lower(), h.ttl) == ((WWW,), "www.test", 50)
    assert res.stats.cname_followed == 2


def test_cname_leading_off_the_answer_is_asked_for(res: Resolver) -> None:
    h = res.query("alias.test", 0.0)
    q = one(res)
    assert feed(res, q, answer(q, cname("alias.test", "far.example", 100))) == []
    q2 = one(res)
    assert q2.src_port == q.src_port
    assert (q2.dst_ip, DnsMessage.parse(q2.payload).questions[0].name) == (NS1, "far.example")
    feed(res, q2, answer(q2, a("far.example", WWW, 500)))
    assert (h.addresses, h.canonical_name, h.ttl) == ((WWW,), "far.example", 100)


def test_cname_loop_is_bounded(res: Resolver) -> None:
    h = res.query("a.test", 0.0)
    q = one(res)
    feed(res, q, answer(q, cname("a.test", "b.test"), cname("b.test", "a.test")))
    assert isinstance(h.error, NoAddressError)
    assert res.stats.cname_followed == 9


def test_nxdomain_is_gaierror_eai_noname(res: Resolver) -> None:
    h = res.query("nope.test", 0.0)
    q = one(res)
    feed(res, q, answer(q, rcode=Rcode.NXDOMAIN))
    assert isinstance(h.error, NameNotFoundError)
    assert isinstance(h.error, socket.gaierror)
    assert h.error.errno == socket.EAI_NONAME
    assert res.poll_transmit() == []


def test_nodata(res: Resolver) -> None:
    h = res.query("v6only.test", 0.0)
    q = one(res)
    feed(res, q, answer(q))
    assert isinstance(h.error, NoAddressError)
    assert h.error.errno == socket.EAI_NODATA


def test_servfail_rotates_then_fails(res: Resolver) -> None:
    h = res.query("broken.test", 0.0)
    for server in (NS1, NS2, NS1, NS2):
        q = one(res)
        assert q.dst_ip == server
        feed(res, q, answer(q, rcode=Rcode.SERVFAIL))
    assert isinstance(h.error, ServerFailureError)
    assert (h.error.errno, h.error.rcode) == (socket.EAI_AGAIN, Rcode.SERVFAIL)
    assert res.stats.server_failures == 4


def test_timeouts_retry_rotate_then_fail(res: Resolver) -> None:
    h = res.query("slow.test", 10.0)
    sent = [one(res)]
    for _ in range(3):
        at = res.poll_at()
        assert at is not None
        assert res.handle_timeout(at) == []
        sent.append(one(res))
    assert [q.dst_ip for q in sent] == [NS1, NS2, NS1, NS2]
    assert len({q.src_port for q in sent}) == 1
    assert len({DnsMessage.parse(q.payload).id for q in sent}) == 4  # a new ID per attempt
    at = res.poll_at()
    assert at == pytest.approx(10.0 + 4 * 2.0)
    assert res.handle_timeout(at - 0.01) == []
    assert res.handle_timeout(at) == [h]
    assert isinstance(h.error, ResolveTimeoutError)
    assert h.error.errno == socket.EAI_AGAIN
    assert res.stats.retransmissions == 3


def test_a_late_reply_to_an_earlier_attempt_is_accepted(res: Resolver) -> None:
    h = res.query("late.test", 0.0)
    q1 = one(res)
    res.handle_timeout(2.0)
    one(res)
    feed(res, q1, answer(q1, a("late.test", WWW)), now=2.5)
    assert h.addresses == (WWW,)


def test_cache_honours_ttl_and_is_bounded() -> None:
    r = Resolver([NS1], random.Random(1), config=ResolverConfig(cache_size=2))
    for i, name in enumerate(("a.test", "b.test")):
        r.query(name, 0.0)
        q = one(r)
        feed(r, q, answer(q, a(name, WWW + i, 100)), now=0.0)
    h = r.query("A.TEST", 50.0)
    assert (h.done, h.from_cache, h.addresses, h.ttl) == (True, True, (WWW,), 50.0)
    assert r.poll_transmit() == []
    assert not r.query("a.test", 100.0).done  # expired
    q = one(r)
    feed(r, q, answer(q, a("a.test", WWW, 100)), now=100.0)
    r.query("c.test", 100.0)
    q = one(r)
    feed(r, q, answer(q, a("c.test", WWW + 2, 100)), now=100.0)
    assert r.stats.cache_evictions == 1  # b.test, the oldest
    assert not r.query("b.test", 101.0).done
    assert r.stats.cache_hits == 1


def test_ttl_zero_is_not_cached(res: Resolver) -> None:
    res.query("z.test", 0.0)
    q = one(res)
    feed(res, q, answer(q, a("z.test", WWW, 0)))
    assert not res.query("z.test", 0.0).done


def test_hosts_and_literals_need_no_query(res: Resolver) -> None:
    h = res.query("GATEWAY.lan", 0.0)
    assert (h.done, h.addresses) == (True, (ip("198.18.0.1"),))
    h = res.query("198.18.0.7", 0.0)
    assert (h.done, h.addresses) == (True, (ip("198.18.0.7"),))
    assert res.poll_transmit() == []
    assert res.stats.hosts_hits == 1


def test_invalid_names_and_no_servers() -> None:
    r = Resolver([], random.Random(1))
    for bad in ("a..b", "x" * 64 + ".test", "ünï.test", "", "."):
        h = r.query(bad, 0.0)
        assert isinstance(h.error, NameNotFoundError)
    h = r.query("ok.test", 0.0)
    assert isinstance(h.error, ResolveTimeoutError)
    assert r.poll_transmit() == []


def test_truncated_reply_is_reported(res: Resolver) -> None:
    h = res.query("big.test", 0.0)
    q = one(res)
    feed(res, q, answer(q, a("big.test", WWW), flags=QR | RD | RA | TC))
    assert isinstance(h.error, ResolveTruncatedError)
    assert (h.truncated, h.truncated_server, h.addresses) == (True, NS1, ())


def test_spoofed_replies_are_counted_and_never_poison(res: Resolver) -> None:
    h = res.query("bank.test", 0.0)
    q = one(res)
    good_id = DnsMessage.parse(q.payload).id
    evil = (a("bank.test", EVIL),)
    port = q.src_port
    attempts = [
        (answer(q, *evil), NS1, 53, port ^ 1),  # wrong destination port
        (answer(q, *evil), EVIL, 53, port),  # not a server we asked
        (answer(q, *evil), NS2, 53, port),  # a configured server, but not asked yet
        (answer(q, *evil), NS1, 5353, port),  # right server, wrong source port
        (answer(q, *evil, id_=good_id ^ 1), NS1, 53, port),  # wrong ID
        (answer(q, *evil, question=Question("bank.test", RType.AAAA)), NS1, 53, port),
        (answer(q, a("other.test", EVIL), question=Question("other.test")), NS1, 53, port),
        (answer(q, *evil, flags=RD), NS1, 53, port),  # a query, not a response
        (answer(q, *evil)[:-3], NS1, 53, port),  # malformed
    ]
    for payload, src, sport, dport in attempts:
        assert res.receive(memoryview(payload), src, sport, dport, 0.1) == []
    assert not h.done
    # the genuine answer also carries an out-of-chain record: it must not be cached either
    feed(res, q, answer(q, a("bank.test", WWW), a("victim.test", EVIL)))
    assert h.addresses == (WWW,)
    assert res.stats == ResolverStats(
        queries=1, tx_queries=1, rx_datagrams=10, rx_unmatched_port=1, rx_wrong_server=2, rx_wrong_port=1,
        rx_wrong_id=1, rx_wrong_question=2, rx_not_response=1, rx_malformed=1, rx_accepted=1)
    # replays of the answer after completion go nowhere
    assert feed(res, q, answer(q, *evil)) == []
    assert res.stats.rx_unmatched_port == 2
    assert res.query("bank.test", 1.0).addresses == (WWW,)
    assert not res.query("victim.test", 1.0).done  # not cached from the extra record


def test_ports_in_use_are_skipped() -> None:
    taken = set(range(1024, 65536)) - {40000}
    r = Resolver([NS1], random.Random(3), port_in_use=taken.__contains__)
    assert r.query("x.test", 0.0).port == 40000


def test_set_servers_applies_to_new_lookups(res: Resolver) -> None:
    res.set_servers([ip("198.18.1.1")])
    res.query("x.test", 0.0)
    assert one(res).dst_ip == ip("198.18.1.1")


@given(st.binary(max_size=300), st.booleans())
def test_fuzz_receive_never_raises(data: bytes, use_valid_prefix: bool) -> None:
    r = Resolver([NS1], random.Random(4))
    h = r.query("fuzz.test", 0.0)
    q = one(r)
    payload = (answer(q, a("fuzz.test", WWW))[:12] + data) if use_valid_prefix else data
    r.receive(memoryview(payload), NS1, 53, q.src_port, 0.1)
    assert h.addresses in ((), (WWW,))
    assert r.stats.rx_datagrams == 1


@given(st.data())
def test_fuzz_mutated_answers_never_poison(data: st.DataObject) -> None:
    r = Resolver([NS1], random.Random(4))
    h = r.query("fuzz.test", 0.0)
    q = one(r)
    good = bytearray(answer(q, cname("fuzz.test", "x.test"), a("x.test", WWW)))
    for _ in range(data.draw(st.integers(1, 6))):
        good[data.draw(st.integers(0, len(good) - 1))] = data.draw(st.integers(0, 255))
    r.receive(memoryview(bytes(good)), NS1, 53, q.src_port, 0.1)
    if h.done and h.error is None:
        assert h.addresses  # whatever was accepted came from a well-formed, matching reply


def test_formerr_to_edns_retries_without_opt(res: Resolver) -> None:
    h = res.query("old.test", 0.0)
    q = one(res)
    assert DnsMessage.parse(q.payload).edns is not None
    feed(res, q, answer(q, rcode=Rcode.FORMERR))
    q2 = one(res)
    assert (q2.dst_ip, DnsMessage.parse(q2.payload).edns) == (NS1, None)
    feed(res, q2, answer(q2, a("old.test", WWW)))
    assert h.addresses == (WWW,)
    assert res.stats.edns_fallbacks == 1


def test_hosts_file_text() -> None:
    hosts = parse_hosts("""
        # comment
        198.18.0.1   gateway.lan gw   # trailing comment
        ::1          localhost6
        198.18.0.2   gw
        bogus        x
    """)
    assert hosts == {"gateway.lan": [ip("198.18.0.1")], "gw": [ip("198.18.0.1"), ip("198.18.0.2")]}
    r = Resolver([], random.Random(1), hosts=hosts)
    assert r.query("GW", 0.0).addresses == (ip("198.18.0.1"), ip("198.18.0.2"))
