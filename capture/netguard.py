"""Where a network camera may be: the guard against camera URLs used to reach the
service's own network (server-side request forgery).

A camera URL names a host; the guard resolves it (every address it resolves to) and
refuses it if any address is:
- a cloud metadata service (169.254.169.254, fd00:ec2::254, Alibaba Cloud's
  100.100.100.200, ...), link-local, unspecified, multicast, broadcast or reserved:
  always;
- loopback or private (any non-global address): unless inside one of the policy's
  `allowed_networks` (cameras live on private networks: list the camera network);
- public: unless the policy allows public addresses;
and refuses the service's own ports (`refused_ports`) on every host.

The check is made again right before every connection (a name that resolved to a
camera at registration may resolve to 127.0.0.1 now: DNS rebinding), and the
connection then goes to the address that was checked (`pinned_url`), never to a
second resolution. Nothing the camera answers can send the reader elsewhere
(`capture.stream`): HTTP redirects are not followed; every URL an HLS playlist
names is checked here in turn before it is fetched (`capture.hls`); RTSP goes
through a relay that cuts the connection on a redirect (`capture.rtsp_relay`).

Blocking (name resolution): call from a thread, never on the event loop.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from capture.exceptions import TargetRefused
from capture.types import CheckedTarget, IPAddress, IPNetwork, NetworkPolicy

NETWORK_SCHEMES: Final = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}

# Instance metadata services of cloud providers: credentials live behind them.
METADATA: Final[tuple[IPNetwork, ...]] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "169.254.169.254/32",  # AWS, GCP, Azure, OpenStack, Oracle, Tencent, Huawei
        "169.254.170.2/32",  # AWS ECS task metadata
        "100.100.100.200/32",  # Alibaba Cloud
        "fd00:ec2::254/128",  # AWS over IPv6
        "fd00:ec2::23/128",  # AWS time/DNS over IPv6
    )
)
# Never a camera, whatever the policy lists.
ALWAYS_REFUSED: Final[tuple[IPNetwork, ...]] = METADATA + tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host
        "169.254.0.0/16",  # link-local
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255
        "::/128",
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
)


def _refuse(message: str, reason: str = "camera_address_refused") -> TargetRefused:
    return TargetRefused(message, reason)


def _plain(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:127.0.0.1)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_problem(address: IPAddress, policy: NetworkPolicy) -> str | None:
    """Why a camera may not be at this address; None if it may."""
    address = _plain(address)
    if any(address in n for n in ALWAYS_REFUSED if n.version == address.version):
        if any(address in n for n in METADATA if n.version == address.version):
            return "a cloud metadata address"
        return "a link-local, unspecified, multicast or reserved address"
    if address.is_multicast or address.is_unspecified or address.is_link_local:
        return "a link-local, unspecified, multicast or reserved address"
    listed = any(address in n for n in policy.allowed_networks if n.version == address.version)
    if listed:
        return None
    if address.is_loopback:
        return "a loopback address (this server itself)"
    if not address.is_global:
        return "a private address outside the camera networks of this server"
    if not policy.allow_public:
        return "a public address (this server accepts cameras on its camera networks only)"
    return None


def split_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a network camera URL; `TargetRefused` otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        raise _refuse("the camera URL cannot be parsed", "invalid_camera_url") from None
    scheme = parts.scheme.lower()
    if scheme not in NETWORK_SCHEMES:
        raise _refuse(
            "a camera URL must be rtsp://, rtsps://, http:// or https://", "invalid_camera_url"
        )
    if not host:
        raise _refuse("the camera URL has no host", "invalid_camera_url")
    return scheme, host, port if port is not None else NETWORK_SCHEMES[scheme]


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address `host` resolves to now (blocking)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return (literal,)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise _refuse(
            f"the camera's host name {host!r} does not resolve on this server",
            "camera_host_unresolved",
        ) from None
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        # Strip an IPv6 zone ("fe80::1%eth0"): the address decides.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise _refuse(
            f"the camera's host name {host!r} does not resolve on this server",
            "camera_host_unresolved",
        )
    return tuple(found)


def check_target(url: str, policy: NetworkPolicy) -> CheckedTarget:
    """Resolve the URL's host and check every address and the port (blocking).

    Raises `TargetRefused` with reason `invalid_camera_url`, `camera_host_unresolved`,
    `camera_address_refused` or `camera_port_refused`."""
    scheme, host, port = split_target(url)
    if port in policy.refused_ports:
        raise _refuse(
            f"port {port} is one of this service's own ports, never a camera",
            "camera_port_refused",
        )
    addresses = resolve(host, port)
    for address in addresses:
        problem = address_problem(address, policy)
        if problem is not None:
            raise _refuse(f"the camera's host {host!r} is {problem}")
    return CheckedTarget(url, scheme, host, port, addresses)


def pinned_url(target: CheckedTarget) -> str:
    """The URL with its host replaced by the checked address, so that the connection
    goes where the check looked (user name, password, path and query kept)."""
    parts = urlsplit(target.url)
    address = target.addresses[0]
    shown = f"[{address}]" if address.version == 6 else str(address)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += f"{shown}:{target.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def host_header(target: CheckedTarget) -> str:
    """The Host header the camera expects (its name, and the port if not the default)."""
    host = target.host
    if ":" in host:
        host = f"[{host}]"
    if target.port != NETWORK_SCHEMES[target.scheme]:
        host = f"{host}:{target.port}"
    return host
