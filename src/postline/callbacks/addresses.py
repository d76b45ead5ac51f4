"""Which IP addresses a client callback may reach: public unicast ones only.

Pure, no I/O. A `callback_url` comes from a client, so without this rule a
client could make Postline's workers POST to whatever they can reach:
services on loopback, the private network, a cloud's metadata endpoint
(which hands out credentials). `refusal` says why an address is refused,
or returns None for a public one.

The networks are written out from the IANA special-purpose registries
rather than left to `ipaddress`'s `is_private`/`is_global`, whose answers
changed between Python patch releases (and which call multicast and
site-local addresses global); those flags are consulted as well, so an
address that either source calls special is refused. An IPv6 address that
carries an IPv4 one (IPv4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`,
6to4 `2002::/16`) is judged by the IPv4 address it reaches.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address

#: Instance metadata and platform endpoints: named so the refusal says so,
#: and because some of them are not in any special-purpose range.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle
        "169.254.170.2",  # AWS ECS task metadata and credentials
        "fd00:ec2::254",  # AWS instance metadata over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure platform endpoint: a public address, so named here
        "192.0.0.192",  # Oracle Cloud, older images
    )
)

_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("a loopback address", ("127.0.0.0/8", "::1/128")),
    # Linux connects 0.0.0.0 to the machine itself.
    ("an unspecified address", ("0.0.0.0/8", "::/128")),
    (
        "a private address",
        (
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
            "fec0::/10",
            "64:ff9b:1::/48",
        ),
    ),
    ("a link-local address", ("169.254.0.0/16", "fe80::/10")),
    ("a shared (CGNAT) address", ("100.64.0.0/10",)),
    ("a multicast address", ("224.0.0.0/4", "ff00::/8")),
    (
        "a reserved address",
        (
            "192.0.0.0/24",
            "192.0.2.0/24",
            "192.88.99.0/24",
            "198.18.0.0/15",
            "198.51.100.0/24",
            "203.0.113.0/24",
            "240.0.0.0/4",
            "::/8",
            "100::/64",
            "2001::/23",
            "2001:db8::/32",
        ),
    ),
)
_NETWORKS = tuple((label, tuple(ip_network(n) for n in nets)) for label, nets in _KINDS)

_NAT64 = IPv6Network("64:ff9b::/96")


def _carried_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def _special(address: IPAddress) -> bool:
    """What the standard library calls anything but public unicast."""
    site_local = isinstance(address, IPv6Address) and address.is_site_local
    return (
        not address.is_global
        or address.is_private
        or address.is_reserved
        or address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or site_local
    )


def refusal(address: IPAddress) -> str | None:
    """Why a callback may not go to `address` (e.g. "a loopback address"), or None."""
    if isinstance(address, IPv6Address):
        carried = _carried_ipv4(address)
        if carried is not None:
            return refusal(carried)
        address = IPv6Address(int(address))  # without a `%zone`, which the tables lack
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for label, networks in _NETWORKS:
        if any(address in network for network in networks):
            return label
    return "not a public address" if _special(address) else None


def parse(text: str) -> IPAddress | None:
    """`text` as an IP address in its standard form, or None."""
    try:
        return ip_address(text)
    except ValueError:
        return None
