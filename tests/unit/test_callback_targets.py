"""Where client callbacks may go: the address rule, the accept-time check, the socket guard.

No test here sends a packet: names are resolved by fakes (or from
/etc/hosts, for `localhost`), and the socket guard is only asked to build a
socket, never to connect it.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postline.callbacks.addresses import refusal
from postline.callbacks.targets import (
    RefusedTarget,
    check_url,
    check_urls,
    public_only_socket,
)

# Written out from SPEC 3 ("loopback, private, link-local or metadata"), the
# IANA special-purpose registries and the clouds' metadata endpoints.
REFUSED = {
    "127.0.0.1": "loopback",
    "127.255.0.9": "loopback",
    "::1": "loopback",
    "10.0.0.1": "private",
    "172.16.0.1": "private",
    "172.31.255.254": "private",
    "192.168.1.1": "private",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "fe80::1%eth0": "link-local",
    "100.64.0.1": "CGNAT",
    "100.127.255.254": "CGNAT",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "192.0.2.10": "reserved",
    "198.18.0.1": "reserved",
    "2001:db8::1": "reserved",
    "169.254.169.254": "metadata",
    "169.254.170.2": "metadata",
    "fd00:ec2::254": "metadata",
    "100.100.100.200": "metadata",
    "168.63.129.16": "metadata",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "metadata",
    "64:ff9b::a00:1": "private",
    "2002:c0a8:101::1": "private",
}
PUBLIC = [
    "8.8.8.8", "1.1.1.1", "93.184.216.34", "172.32.0.1", "100.128.0.1", "11.0.0.1",
    "2606:4700:4700::1111", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808",
]  # fmt: skip


@pytest.mark.parametrize(("text", "kind"), sorted(REFUSED.items()))
def test_special_addresses_are_refused_and_named(text: str, kind: str) -> None:
    reason = refusal(ipaddress.ip_address(text))

    assert reason is not None and kind in reason


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_allowed(text: str) -> None:
    assert refusal(ipaddress.ip_address(text)) is None


@given(
    st.sampled_from(
        ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
         "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "fc00::/7", "fe80::/10",
         "ff00::/8", "::1/128"]
    ).flatmap(lambda net: st.ip_addresses(network=net))
)  # fmt: skip
def test_every_address_of_a_special_network_is_refused(address: ipaddress._BaseAddress) -> None:
    assert refusal(address) is not None  # type: ignore[arg-type]


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_is_judged_the_same_inside_ipv6(address: ipaddress.IPv4Address) -> None:
    value = int(address)
    mapped = ipaddress.IPv6Address((0xFFFF << 32) | value)
    nat64 = ipaddress.IPv6Address((0x64FF9B << 96) | value)
    six_to_four = ipaddress.IPv6Address((0x2002 << 112) | (value << 80))

    verdict = refusal(address) is None
    assert [refusal(a) is None for a in (mapped, nat64, six_to_four)] == [verdict] * 3


def resolver(answers: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    """A fake resolver: `answers` by host name; any other name does not exist."""
    calls: list[str] = []

    async def resolve(host: str) -> list[str]:
        calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("https://[::1]/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
        ("http://100.64.0.1/", "CGNAT"),
        ("http://0.0.0.0:9/", "unspecified"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("https://user:password@192.168.0.1/", "private"),
        ("http://127.1/", "not written as a.b.c.d"),
        ("http://2130706433/", "not written as a.b.c.d"),
        ("http://0x7f.0.0.1/", "not written as a.b.c.d"),
        ("http://134744072/", "not written as a.b.c.d"),  # 8.8.8.8, but aiohttp would not go
        ("http:///hook", "no host"),
        ("http://hooks.example.com:99999/", "not a URL"),
    ],
)
async def test_accept_time_refusals(url: str, says: str) -> None:
    fake = resolver({})

    with pytest.raises(RefusedTarget, match=says):
        await check_url(url, resolve=fake)
    assert fake.calls == []  # an address in the URL is never looked up


async def test_localhost_resolves_to_loopback_and_is_refused() -> None:
    # The real resolver: `localhost` comes from /etc/hosts, nothing leaves the machine.
    with pytest.raises(RefusedTarget, match=r"localhost resolves to .*loopback"):
        await check_url("http://localhost:8080/hook")


async def test_a_name_with_only_public_addresses_passes() -> None:
    fake = resolver({"hooks.example.com": ["93.184.216.34", "2606:2800:220:1::1"]})

    await check_url("https://hooks.example.com/postline?k=1", resolve=fake)

    assert fake.calls == ["hooks.example.com"]


async def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    fake = resolver({"mixed.example.com": ["93.184.216.34", "10.0.0.7"]})

    with pytest.raises(RefusedTarget, match=r"resolves to 10\.0\.0\.7, a private address"):
        await check_url("https://mixed.example.com/", resolve=fake)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(RefusedTarget, match="does not resolve"):
        await check_url("https://nowhere.example.com/", resolve=resolver({}))
    with pytest.raises(RefusedTarget, match="does not resolve"):
        await check_url("https://empty.example.com/", resolve=resolver({"empty.example.com": []}))


async def test_a_name_that_resolves_too_slowly_is_refused() -> None:
    async def slow(host: str) -> list[str]:
        await asyncio.sleep(5)
        return ["93.184.216.34"]

    with pytest.raises(RefusedTarget, match=r"did not resolve within 0\.05 s"):
        await check_url("https://slow.example.com/", resolve=slow, timeout=0.05)


async def test_a_batch_looks_each_distinct_url_up_once() -> None:
    fake = resolver({"a.example.com": ["93.184.216.34"], "b.example.com": ["10.0.0.1"]})
    urls = ["https://a.example.com/x", "https://b.example.com/", "https://a.example.com/x"]

    found = await check_urls(urls, resolve=fake)

    assert sorted(fake.calls) == ["a.example.com", "b.example.com"]
    assert found["https://a.example.com/x"] is None
    assert isinstance(found["https://b.example.com/"], RefusedTarget)


def addr_info(host: str) -> tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple]:  # type: ignore[type-arg]
    if ":" in host:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (host, 443, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, 443))


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "fd00:ec2::254", "0.0.0.0",
             "::ffff:127.0.0.1", "fe80::1%lo"],
)  # fmt: skip
def test_the_socket_guard_refuses_special_addresses(host: str) -> None:
    with pytest.raises(OSError, match="callbacks may not connect") as refused:
        public_only_socket(addr_info(host))
    assert refused.value.errno == errno.EACCES


def test_the_socket_guard_builds_a_socket_for_a_public_address() -> None:
    sock = public_only_socket(addr_info("93.184.216.34"))  # built, never connected
    try:
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM
    finally:
        sock.close()
