"""Outbound requests to addresses users configure (webhooks) may not reach this host or its private network.

A target is checked when it is configured and again when it is called: its host is resolved and every address it
resolves to must be public (not loopback, private, link-local, multicast, unspecified, reserved, or a cloud
metadata address; integer and hex forms of IPv4 are resolved like any other name). The connection itself is made
to an address that passed the check (``GuardedTransport``), so a DNS answer that changes between the check and the
connect (rebinding) cannot slip through. An admin may allow named internal hosts by configuration
(COPILOT_WEBHOOK_ALLOWED_HOSTS).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpcore
import httpx

from copilot.errors import InvalidInput

Resolver = Callable[[str, int], list[str]]
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal"})
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                                ipaddress.ip_address("100.100.100.200")})  # fmt: skip


class BlockedTarget(InvalidInput):
    """The URL points at this host, its private network or a metadata service."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise BlockedTarget(f"url: the host '{host}' does not resolve ({error.strerror})") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def blocked_reason(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    checks = (
        (ip in METADATA_ADDRESSES, "a cloud metadata address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_unspecified, "the unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((f"{ip} is {why}" for hit, why in checks if hit), None)


@dataclass(frozen=True)
class TargetPolicy:
    allowed_hosts: frozenset[str] = frozenset()  # host names (lower case) an admin allowed despite the rules
    resolve: Resolver = field(default=system_resolver)

    @classmethod
    def of(cls, allowed: Iterable[str], resolve: Resolver | None = None) -> TargetPolicy:
        return cls(frozenset(h.strip().lower() for h in allowed if h.strip()), resolve or system_resolver)

    def allowed(self, host: str) -> bool:
        return host.lower() in self.allowed_hosts

    def addresses(self, host: str, port: int) -> list[str]:
        """The addresses of ``host`` that may be connected to; BlockedTarget when any is off limits."""
        if self.allowed(host):
            return self.resolve(host, port)
        if host.lower().rstrip(".") in METADATA_HOSTS:
            raise BlockedTarget(f"url: '{host}' is a cloud metadata service")
        addresses = self.resolve(host, port)
        for address in addresses:
            if reason := blocked_reason(address):
                raise BlockedTarget(f"url: '{host}' resolves to {reason}; webhooks must reach a public address")
        return addresses

    def check_url(self, url: str) -> None:
        """Refuse a URL with credentials, a non-http(s) scheme, or a host that resolves to a blocked address."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise BlockedTarget("url: use an http:// or https:// URL")
        if parts.username is not None or parts.password is not None:
            raise BlockedTarget("url: credentials in the URL are not allowed (the webhook is signed instead)")
        if not parts.hostname:
            raise BlockedTarget("url: the URL has no host")
        self.addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class GuardedBackend(httpcore.SyncBackend):
    """Connects only to addresses the policy allows, resolving the host itself at connect time."""

    def __init__(self, policy: TargetPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[object] | None = None) -> httpcore.NetworkStream:  # fmt: skip
        address = self.policy.addresses(host, port)[0]
        return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                   socket_options=socket_options)  # fmt: skip


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with a connection pool whose connects go through the policy (TLS still checks the name)."""

    def __init__(self, policy: TargetPolicy, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=GuardedBackend(policy)
        )
