"""The DHCP client state machine (RFC 2131 section 4.4), sans-I/O: replies and `now` in, datagrams and events out."""

from __future__ import annotations

import random
from enum import Enum

from tcpip.core.dhcp_lease import (
    Bound,
    DhcpEvent,
    DhcpStats,
    Lease,
    Lost,
    Outgoing,
    Renewed,
    lease_from_ack,
    usable,
)
from tcpip.errors import WireError
from tcpip.wire.dhcp import BROADCAST_FLAG, DhcpMessage, DhcpOptions, MessageType, Op, Opt

__all__ = ["BROADCAST", "Bound", "DhcpClient", "DhcpEvent", "DhcpState", "DhcpStats", "Lease", "Lost", "Outgoing",
           "Renewed"]

BROADCAST = 0xFFFFFFFF
PARAMETER_REQUESTS = (Opt.SUBNET_MASK, Opt.ROUTER, Opt.DNS_SERVERS, Opt.DOMAIN_NAME, Opt.INTERFACE_MTU,
                      Opt.BROADCAST_ADDRESS, Opt.LEASE_TIME, Opt.RENEWAL_TIME, Opt.REBINDING_TIME)


class DhcpState(Enum):
    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    REBOOTING = "REBOOTING"  # INIT-REBOOT's DHCPREQUEST for a remembered address is out
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    STOPPED = "STOPPED"


class DhcpClient:
    """One interface's DHCP client. Drive it with start/receive/handle_timeout; drain poll_transmit()."""

    BACKOFF_FIRST = 4.0
    BACKOFF_MAX = 64.0
    REQUEST_TRIES = 4  # REQUESTING/REBOOTING give up and go back to INIT after this many unanswered
    DECLINE_WAIT = 10.0  # RFC 2131 3.1.5: wait at least 10 s after a DECLINE
    RENEW_MIN = 60.0  # RFC 2131 4.4.5: retransmit renew/rebind no more often than this

    def __init__(self, mac: bytes, rng: random.Random, *, hostname: str | None = None,
                 requested: int | None = None) -> None:
        if len(mac) != 6:
            raise ValueError("mac must be 6 bytes")
        if hostname is not None and not (hostname.isascii() and hostname.isprintable() and 0 < len(hostname) < 256):
            raise ValueError(f"hostname {hostname!r}: 1-255 printable ASCII characters (RFC 2132 3.14)")
        self.mac = bytes(mac)
        self.rng = rng
        self.hostname = hostname
        self.requested = requested  # the remembered address for INIT-REBOOT
        self.client_id = b"\x01" + self.mac  # RFC 2132 9.14: type 1 (Ethernet) + MAC, stable per MAC
        self.state = DhcpState.INIT
        self.lease: Lease | None = None
        self.stats = DhcpStats()
        self._tx: list[Outgoing] = []
        self._xid = 0
        self._tries = 0  # transmissions of the current message
        self._retx_at: float | None = None
        self._sent_at = 0.0  # when the current DHCPREQUEST was last sent
        self._started_at = 0.0  # for the secs field
        self._offer: DhcpMessage | None = None  # the selected OFFER
        self._restart_at: float | None = None  # INIT after a DECLINE

    # -- API --------------------------------------------------------------------------------------
    def start(self, now: float) -> list[DhcpEvent]:
        """Begin: INIT-REBOOT when an address is remembered, else INIT (DISCOVER)."""
        if self.requested is not None:
            self._new_exchange(now)
            self.state = DhcpState.REBOOTING
            self._send_request(now)
        else:
            self._discover(now)
        return []

    def poll_transmit(self) -> list[Outgoing]:
        out, self._tx = self._tx, []
        return out

    def poll_at(self) -> float | None:
        s = self.state
        if s in (DhcpState.SELECTING, DhcpState.REQUESTING, DhcpState.REBOOTING):
            return self._retx_at
        if s == DhcpState.INIT:
            return self._restart_at
        if self.lease is None or s == DhcpState.STOPPED:
            return None
        times = {DhcpState.BOUND: (self.lease.renew_at,),
                 DhcpState.RENEWING: (self._retx_at, self.lease.rebind_at),
                 DhcpState.REBINDING: (self._retx_at, self.lease.expires_at)}[s]
        live = [t for t in times if t is not None and t != float("inf")]
        return min(live) if live else None

    def handle_timeout(self, now: float) -> list[DhcpEvent]:  # noqa: PLR0912 - one branch per RFC 2131 state
        s, lease = self.state, self.lease
        if s == DhcpState.INIT:
            if self._restart_at is not None and now >= self._restart_at:
                self._discover(now)
        elif s == DhcpState.SELECTING:
            if self._retx_at is not None and now >= self._retx_at:
                self.stats.retransmissions += 1
                self._send_discover(now)
        elif s in (DhcpState.REQUESTING, DhcpState.REBOOTING):
            if self._retx_at is not None and now >= self._retx_at:
                if self._tries >= self.REQUEST_TRIES:
                    self._discover(now)
                else:
                    self.stats.retransmissions += 1
                    self._send_request(now)
        elif lease is not None and s in (DhcpState.BOUND, DhcpState.RENEWING, DhcpState.REBINDING):
            if now >= lease.expires_at:
                self.stats.expirations += 1
                return self._lose("expired", now, restart=True)
            if s != DhcpState.REBINDING and now >= lease.rebind_at:
                self.state = DhcpState.REBINDING
                self._new_exchange(now)
                self._send_request(now)
            elif s == DhcpState.BOUND and now >= lease.renew_at:
                self.state = DhcpState.RENEWING
                self._new_exchange(now)
                self._send_request(now)
            elif s != DhcpState.BOUND and self._retx_at is not None and now >= self._retx_at:
                self.stats.retransmissions += 1
                self._send_request(now)
        return []

    def receive(self, payload: memoryview | bytes, src_ip: int, now: float) -> list[DhcpEvent]:  # noqa: PLR0911 - one return per counted drop
        """A UDP payload that arrived on port 68 from port 67. Anything not meant for us is counted and dropped."""
        st = self.stats
        st.rx_messages += 1
        try:
            m = DhcpMessage.parse(payload)
        except WireError:
            st.rx_malformed += 1
            return []
        if m.op != Op.BOOTREPLY:
            st.rx_not_reply += 1
            return []
        if m.xid != self._xid or self.state in (DhcpState.INIT, DhcpState.BOUND, DhcpState.STOPPED):
            st.rx_wrong_xid += 1  # no exchange is open in INIT/BOUND/STOPPED: any xid is stale
            return []
        if m.chaddr != self.mac:
            st.rx_wrong_chaddr += 1
            return []
        mt = m.options.message_type
        if mt is None:
            st.rx_no_message_type += 1
            return []
        if self.state == DhcpState.SELECTING:
            if mt != MessageType.OFFER:
                st.rx_unexpected += 1
                return []
            if m.options.server_id is None or not usable(m.yiaddr):
                st.rx_bad_offer += 1
                return []
            st.offers += 1
            self._offer = m  # the first acceptable offer wins
            self.state = DhcpState.REQUESTING
            self._tries = 0
            self._send_request(now)
            return []
        if mt not in (MessageType.ACK, MessageType.NAK):
            st.rx_unexpected += 1
            return []
        # in REQUESTING and RENEWING one server was chosen; REBOOTING and REBINDING hear any server
        chosen = self._server()
        if self.state in (DhcpState.REQUESTING, DhcpState.RENEWING) and m.options.server_id != chosen:
            st.rx_wrong_server += 1
            return []
        if mt == MessageType.NAK:
            st.naks += 1
            return self._lose("nak", now, restart=True)
        return self._ack(m, now)

    def probe_conflict(self, now: float) -> list[DhcpEvent]:
        """The host's ARP probe (RFC 5227) found the bound address in use: DECLINE it, restart after 10 s."""
        lease = self.lease
        if lease is None or self.state != DhcpState.BOUND:
            return []
        self._new_exchange(now)
        self._emit(MessageType.DECLINE, now, 0, BROADCAST, 0, requested=lease.address, server=lease.server_id)
        self.stats.tx_decline += 1
        self.requested = None
        events = self._lose("declined", now, restart=False)
        self._restart_at = now + self.DECLINE_WAIT
        return events

    def release(self, now: float) -> list[DhcpEvent]:
        """Clean shutdown: RELEASE a held lease (unicast to its server), then stop."""
        events: list[DhcpEvent] = []
        lease = self.lease
        if lease is not None and self.state in (DhcpState.BOUND, DhcpState.RENEWING, DhcpState.REBINDING):
            self._new_exchange(now)
            self._emit(MessageType.RELEASE, now, lease.address, lease.server_id, lease.address,
                       server=lease.server_id)
            self.stats.tx_release += 1
            events = self._lose("released", now, restart=False)
        self.state = DhcpState.STOPPED
        self.lease = None
        self._retx_at = self._restart_at = None
        return events

    # -- internals --------------------------------------------------------------------------------
    def _new_exchange(self, now: float) -> None:
        self._xid = self.rng.getrandbits(32)
        self._tries = 0
        self._started_at = now

    def _discover(self, now: float) -> None:
        self.state = DhcpState.SELECTING
        self._offer = None
        self._restart_at = None
        self._new_exchange(now)
        self._send_discover(now)

    def _backoff(self) -> float:
        """RFC 2131 4.1: 4 s, 8 s, 16 s ... capped at 64 s, each +-1 s uniformly random."""
        base = min(self.BACKOFF_FIRST * 2.0 ** (self._tries - 1), self.BACKOFF_MAX)
        return base + self.rng.uniform(-1.0, 1.0)

    def _send_discover(self, now: float) -> None:
        self._tries += 1
        self._emit(MessageType.DISCOVER, now, 0, BROADCAST, 0, requested=self.requested, prl=True)
        self.stats.tx_discover += 1
        self._retx_at = now + self._backoff()

    def _send_request(self, now: float) -> None:
        """The DHCPREQUEST of the current state (RFC 2131 4.3.2 table 4), with its retransmission time."""
        self._tries += 1
        self._sent_at = now
        s, lease = self.state, self.lease
        if s == DhcpState.REQUESTING and self._offer is not None:
            self._emit(MessageType.REQUEST, now, 0, BROADCAST, 0, requested=self._offer.yiaddr,
                       server=self._offer.options.server_id, prl=True)
            self._retx_at = now + self._backoff()
        elif s == DhcpState.REBOOTING:
            self._emit(MessageType.REQUEST, now, 0, BROADCAST, 0, requested=self.requested, prl=True)
            self._retx_at = now + self._backoff()
        elif lease is not None:  # RENEWING: unicast to the server id; REBINDING: broadcast
            renewing = s == DhcpState.RENEWING
            dst = lease.server_id if renewing else BROADCAST
            self._emit(MessageType.REQUEST, now, lease.address, dst, lease.address, prl=True)
            limit = lease.rebind_at if renewing else lease.expires_at
            self._retx_at = min(now + max((limit - now) / 2, self.RENEW_MIN), limit)
        self.stats.tx_request += 1

    def _emit(self, mt: MessageType, now: float, src: int, dst: int, ciaddr: int, *,
              requested: int | None = None, server: int | None = None, prl: bool = False) -> None:
        hostname = self.hostname if mt in (MessageType.DISCOVER, MessageType.REQUEST) else None
        opts = DhcpOptions(message_type=mt, client_id=self.client_id, requested_ip=requested, server_id=server,
                           hostname=hostname, parameter_requests=PARAMETER_REQUESTS if prl else ())
        # no address yet: ask servers to broadcast their replies (RFC 2131 4.1), as we cannot take unicast
        flags = BROADCAST_FLAG if ciaddr == 0 and mt in (MessageType.DISCOVER, MessageType.REQUEST) else 0
        secs = min(int(now - self._started_at), 0xFFFF) if mt in (MessageType.DISCOVER, MessageType.REQUEST) else 0
        msg = DhcpMessage(Op.BOOTREQUEST, self._xid, self.mac, opts, secs=max(secs, 0), flags=flags, ciaddr=ciaddr)
        self._tx.append(Outgoing(dst, src, msg.emit(), dst == BROADCAST))

    def _server(self) -> int | None:
        if self.state == DhcpState.REQUESTING and self._offer is not None:
            return self._offer.options.server_id
        return self.lease.server_id if self.lease is not None else None

    def _ack(self, m: DhcpMessage, now: float) -> list[DhcpEvent]:
        o = m.options
        if o.lease_time is None or o.server_id is None or not usable(m.yiaddr):
            self.stats.rx_bad_offer += 1
            return []
        lease = lease_from_ack(m, o.lease_time, o.server_id, self._sent_at)
        if self.state == DhcpState.REQUESTING and self._offer is not None and m.yiaddr != self._offer.yiaddr:
            self.stats.rx_bad_offer += 1  # ACK for another address than the one we asked for
            return []
        self.stats.acks += 1
        old = self.lease
        events: list[DhcpEvent] = []
        if old is not None and old.address == lease.address:
            events.append(Renewed(lease))
        else:
            if old is not None:
                events.append(Lost(old.address, "replaced"))
            events.append(Bound(lease))
        self.lease = lease
        self.requested = lease.address
        self.state = DhcpState.BOUND
        self._retx_at = None
        self._offer = None
        return events

    def _lose(self, reason: str, now: float, *, restart: bool) -> list[DhcpEvent]:
        lease, self.lease = self.lease, None
        self._retx_at = None
        if reason != "expired":
            self.requested = None  # NAK, DECLINE, RELEASE: the address is no longer ours to ask for
        self.state = DhcpState.INIT
        if restart:
            self._discover(now)
        return [Lost(lease.address, reason)] if lease is not None else []
