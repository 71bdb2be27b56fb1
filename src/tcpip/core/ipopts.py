"""IPv4 options of a reply (RFC 791, RFC 1122 3.2.2.6): Record Route and Timestamp echoed and filled in
the way Linux's ip_options_compile (on receive) and ip_options_echo + ip_options_build (on reply) do."""

from __future__ import annotations

RR = 7
TS = 0x44
_TS_ONLY, _TS_ADDR, _TS_PRESPEC = 0, 1, 3


def echo_options(opts: bytes | bytearray | memoryview, addr: int, ms: int) -> bytes | None:
    """The options of a reply to a datagram carrying `opts`, with our address `addr` and the timestamp
    `ms` (milliseconds since midnight UT, or with the high bit set when not) recorded once as the
    request arrives and once as the reply leaves, as a Linux host does; b"" when nothing is echoed; None
    when an option is malformed (Linux then sends no reply)."""
    a = addr.to_bytes(4, "big")
    t = (ms & 0xFFFFFFFF).to_bytes(4, "big")
    rr = ts = b""
    i, n = 0, len(opts)
    while i < n:
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= n or opts[i + 1] < 2 or i + opts[i + 1] > n:
            return None
        ln = opts[i + 1]
        o = bytearray(opts[i:i + ln])
        if k == RR and not rr:
            r = _record_route(o, a)
            if r is None:
                return None
            rr = r
        elif k == TS and not ts:
            r = _timestamp(o, a, t)
            if r is None:
                return None
            ts = r
        i += ln
    out = rr + ts
    return out + bytes(-len(out) % 4)  # padded with End of Option List


def _record_route(o: bytearray, a: bytes) -> bytes | None:
    ln = len(o)
    if ln < 3 or o[2] < 4:
        return None
    for _ in range(2):  # recorded on receive, then again on the reply's way out
        p = o[2]
        if p > ln:
            break  # full: nothing recorded
        if p + 3 > ln:
            return None
        o[p - 1:p + 3] = a
        o[2] = p + 4
    return bytes(o)


def _timestamp(o: bytearray, a: bytes, t: bytes) -> bytes | None:  # noqa: PLR0912 - RFC 791 flags and overflow, as Linux
    ln = len(o)
    if ln < 4 or o[2] < 5:
        return None
    flag = o[3] & 0x0F
    if flag not in (_TS_ONLY, _TS_ADDR, _TS_PRESPEC):
        return None
    for step in range(2):
        p = o[2]
        if p > ln:
            if step:
                break  # full after our receive record: the reply adds nothing (ip_options_echo)
            if o[3] & 0xF0 == 0xF0:
                return None  # the overflow counter itself overflows
            o[3] += 0x10  # no room: count the hop that could not record
            break
        if flag == _TS_ONLY:
            if p + 3 > ln:
                return None
            o[p - 1:p + 3] = t
            o[2] = p + 4
        else:
            if p + 7 > ln:
                return None
            if flag == _TS_PRESPEC:
                if o[p - 1:p + 3] != a or step:  # only our own prespecified slot, on receive
                    break
            else:
                o[p - 1:p + 3] = a
            o[p + 3:p + 7] = t
            o[2] = p + 8
    return bytes(o)
