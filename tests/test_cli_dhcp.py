"""The CLI's issue-16 flags, parsed: --dhcp without --ipv4, --ipv4 repeated, --route CIDR,via=IP, --dns."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

import pytest

from tcpip import cli


def parse(*argv: str) -> object:
    return cli.build_parser().parse_args(list(argv))


def test_dhcp_needs_no_ipv4_and_dns_repeats() -> None:
    a = parse("up", "--tap", "tap0", "--dhcp", "--dns", "198.18.0.1,198.18.0.2", "--dns", "198.18.0.3")
    assert (a.ipv4, a.dhcp, a.dhcp_timeout) == (None, True, 30.0)  # type: ignore[attr-defined]
    assert [x for g in a.dns for x in g] == [IPv4Address(f"198.18.0.{i}") for i in (1, 2, 3)]  # type: ignore[attr-defined]
    cli.check_addressing(a)  # type: ignore[arg-type]


def test_ipv4_repeats_first_is_primary_and_routes_parse() -> None:
    a = parse("up", "--tap", "tap0", "--ipv4", "198.18.0.2/24", "--ipv4", "198.18.1.2/24",
              "--route", "198.19.0.0/16,via=198.18.0.1", "--route", "0.0.0.0/0,via=198.18.0.254")
    assert a.ipv4 == IPv4Interface("198.18.0.2/24")  # type: ignore[attr-defined]
    assert a.ipv4_all == [IPv4Interface("198.18.0.2/24"), IPv4Interface("198.18.1.2/24")]  # type: ignore[attr-defined]
    assert [(str(n), str(v)) for n, v in a.route] == [  # type: ignore[attr-defined]
        ("198.19.0.0/16", "198.18.0.1"), ("0.0.0.0/0", "198.18.0.254")]


@pytest.mark.parametrize(("argv", "message"), [
    (["--route", "198.19.0.0/16"], "CIDR,via=IP"),
    (["--route", "198.19.0.1/16,via=198.18.0.1"], "host bits"),
    (["--route", "198.19.0.0/16,via=x"], "bad IPv4 address"),
    (["--dns", "nope"], "bad IPv4 address"),
])
def test_bad_flags_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        parse("up", "--tap", "tap0", "--dhcp", *argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_neither_ipv4_nor_dhcp_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # checked before any device is opened
    assert cli.main(["up", "--tap", "tap0"]) == 2
    assert capsys.readouterr().err.strip() == "tcpip up: error: give --ipv4 ADDR/PREFIX or --dhcp"
    assert cli.main(["ping", "server.test", "--tap", "tap0"]) == 2
