"""SSRF address policy (pure): which resolved addresses may be fetched from."""

from __future__ import annotations

import ipaddress

import pytest

from depository.monitoring.fetcher import address_refused, parse_allow_cidrs


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
    "224.0.0.1", "255.255.255.255", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2002:7f00:1::1", "::", "ff02::1", "192.0.2.1", "198.18.0.1",
])
def test_special_addresses_refused(ip: str) -> None:
    assert address_refused(ipaddress.ip_address(ip)) is not None


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946"])
def test_global_addresses_allowed(ip: str) -> None:
    assert address_refused(ipaddress.ip_address(ip)) is None


def test_allow_list_overrides_only_its_networks() -> None:
    allow = parse_allow_cidrs(["127.0.0.0/8", "10.1.0.0/16"])
    assert address_refused(ipaddress.ip_address("127.0.0.2"), allow) is None
    assert address_refused(ipaddress.ip_address("::ffff:127.0.0.1"), allow) is None
    assert address_refused(ipaddress.ip_address("10.1.2.3"), allow) is None
    assert address_refused(ipaddress.ip_address("10.2.0.1"), allow) is not None
    assert address_refused(ipaddress.ip_address("::1"), allow) is not None
