"""Where a client callback may go: checked when a message is accepted, and at connect time.

At accept time `check_url` resolves the URL's host and requires every
address it gives to be public (`addresses.refusal`); a host that does not
resolve within `RESOLVE_TIMEOUT_SECONDS` is refused as well, since nothing
could be delivered to it. An IPv4 address in a legacy form (`127.1`,
`2130706433`, `0x7f.1`) is refused outright: aiohttp would not connect to
it, and it only ever serves to slip past a check like this one.

That check alone does not hold: a name can resolve elsewhere an hour later
(DNS rebinding). So the dispatcher's connector builds its sockets with
`public_only_socket`, which refuses a forbidden address just before the
connect: the rule applies to the address actually connected to, IP
literals included (aiohttp does not pass those through its resolver).

`CALLBACK_ALLOW_PRIVATE_NETWORKS=true` lifts both checks; then no name is
resolved at accept time at all.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from yarl import URL

from postline.callbacks.addresses import parse, refusal

RESOLVE_TIMEOUT_SECONDS = 2.0
#: Distinct hosts of one batch resolved at a time.
RESOLVE_CONCURRENCY = 16

Resolver = Callable[[str], Awaitable[list[str]]]
#: What aiohttp hands a socket factory (aiohappyeyeballs' AddrInfoType).
AddrInfo = tuple[int | socket.AddressFamily, int | socket.SocketKind, int, str, tuple[Any, ...]]


class RefusedTarget(ValueError):
    """A callback URL Postline will not call; the message says why, for the client."""


class Unresolvable(RefusedTarget):
    """Refused because its host did not resolve (now): the one refusal time may cure."""


async def system_resolve(host: str) -> list[str]:
    """The addresses the event loop's resolver gives for `host`."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def host_of(url: str) -> str:
    """The host aiohttp would connect to for `url` (parsed by the same library)."""
    try:
        parsed = URL(url)
        host = parsed.raw_host
        _ = parsed.port  # an invalid port raises here rather than at delivery
    except (ValueError, TypeError) as exc:
        raise RefusedTarget("is not a URL that can be called") from exc
    if not host:
        raise RefusedTarget("has no host name")
    return host


def _legacy_ipv4(host: str) -> bool:
    """True for an IPv4 address in a form other than a.b.c.d (which `parse` reads)."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


async def check_url(
    url: str, *, resolve: Resolver | None = None, timeout: float = RESOLVE_TIMEOUT_SECONDS
) -> None:
    """Returns when every address of `url`'s host is public; else raises `RefusedTarget`.

    `resolve` defaults to `system_resolve`, looked up at call time.
    """
    host = host_of(url)
    literal = parse(host)
    if literal is not None:
        reason = refusal(literal)
        if reason is not None:
            raise RefusedTarget(f"its host {host} is {reason}")
        return
    if _legacy_ipv4(host):
        raise RefusedTarget(f"its host {host} is an IPv4 address not written as a.b.c.d")
    try:
        async with asyncio.timeout(timeout):
            found = await (resolve or system_resolve)(host)
    except TimeoutError as exc:
        raise Unresolvable(f"its host {host} did not resolve within {timeout:g} s") from exc
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise Unresolvable(f"its host {host} does not resolve") from exc
    if not found:
        raise Unresolvable(f"its host {host} does not resolve")
    for text in found:
        address = parse(text)
        reason = "not an IP address" if address is None else refusal(address)
        if reason is not None:
            raise RefusedTarget(f"its host {host} resolves to {text}, {reason}")


async def check_urls(
    urls: Iterable[str], *, resolve: Resolver | None = None
) -> dict[str, RefusedTarget | None]:
    """`check_url` for each distinct URL, a few at a time: URL -> its refusal, or None."""
    slots = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def one(url: str) -> RefusedTarget | None:
        async with slots:
            try:
                await check_url(url, resolve=resolve)
            except RefusedTarget as exc:
                return exc
            return None

    distinct = list(dict.fromkeys(urls))
    return dict(zip(distinct, await asyncio.gather(*(one(u) for u in distinct)), strict=True))


def public_only_socket(addr_info: AddrInfo) -> socket.socket:
    """aiohttp's socket factory for callbacks: refuses to connect anywhere but public addresses.

    Called once per address aiohttp is about to connect to, after any
    resolution; a refusal is an OSError, so the next address is tried and,
    when none is left, the request fails like any connection error.
    """
    family, kind, proto, _, sockaddr = addr_info
    host = str(sockaddr[0])
    address = parse(host)
    reason = "not an IP address" if address is None else refusal(address)
    if reason is not None:
        raise OSError(errno.EACCES, f"callbacks may not connect to {host}: it is {reason}")
    return socket.socket(family=family, type=kind, proto=proto)
