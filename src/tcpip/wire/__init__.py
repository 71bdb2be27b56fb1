"""Stateless wire formats: each layer has a `parse` that validates untrusted bytes and an `emit` that writes every byte.

Contract: `XRepr.parse(buf)` raises a `tcpip.errors.WireError` subclass (never IndexError or struct.error) on
malformed input; `repr.emit(buf)` writes all `repr.buffer_len()` header bytes, checksums included.

>>> from tcpip.wire.ethernet import EthernetRepr, EtherType
>>> from tcpip.wire.mac import MacAddress
>>> r = EthernetRepr(MacAddress.BROADCAST, MacAddress("02:00:00:00:00:01"), EtherType.ARP)
>>> buf = bytearray(14); r.emit(buf)
>>> EthernetRepr.parse(buf) == r
True
"""
