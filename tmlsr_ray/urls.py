"""What the service may reach, and how much it may take: URL checks, the address policy (public
addresses only unless allowed), and the size cap on everything streamed to disk. Downloads,
OSS and webhooks all use it; it imports nothing of Ray, HTTP routes or storage.

Addresses are checked where they are resolved (a resolver that refuses non-public addresses), so the
connection goes to the address that was checked; IP literals, which skip the resolver, are checked
per redirect hop, and redirects are followed by hand for that reason.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import quote, unquote, urlsplit

import aiohttp
from yarl import URL
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from tmlsr_ray.errors import FetchError

HTTP_SCHEMES = ("http", "https")
INPUT_SCHEMES = HTTP_SCHEMES + ("oss",)
CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    allowlist: Tuple[str, ...] = ()  # URL prefixes or host names trusted even on private networks
    max_bytes: int = 2 * 1024**3
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    total_timeout_s: float = 1800.0
    min_bytes_per_s: float = 8 * 1024  # 0: no floor
    rate_window_s: float = 60.0
    max_redirects: int = 5
    attempts: int = 3
    backoff_s: float = 0.5


# IETF protocol assignments (OCI Classic's metadata service is 192.0.0.192): not globally reachable,
# but Python before 3.11.10 and 3.12.4 (CVE-2024-4032) counts the block global
_NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"),)


def address_refusal(address: str) -> Optional[str]:
    """Why an address may not be fetched from, or ``None`` when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    # site-local (fec0::/10): IPv6's private scope before unique local addresses, which Python counts as global
    for flag in ("loopback", "private", "link_local", "site_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{flag}", False):
            return f"{flag.replace('_', '-')} address {ip}"
    if not ip.is_global or any(ip in network for network in _NOT_GLOBAL):
        return f"non-public address {ip}"
    return None


class PublicOnlyResolver(AbstractResolver):
    """Resolves names and refuses any answer that is not a public address."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> List[Dict[str, Any]]:
        hosts = await self._inner.resolve(host, port, family)
        for entry in hosts:
            reason = address_refusal(entry["host"])
            if reason:
                raise FetchError(f"refused to fetch from {host}: it resolves to a {reason}")
        return hosts

    async def close(self) -> None:
        await self._inner.close()


_NAME_NOT_FOUND = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def host_not_found(exc: aiohttp.ClientConnectorDNSError) -> bool:
    """DNS answered that the name does not exist: asking again will not make it exist (a
    resolver that failed to answer is another error, worth another try)."""
    return getattr(exc.os_error, "errno", None) in _NAME_NOT_FOUND


def checked_connector(policy: FetchPolicy, url: str) -> aiohttp.TCPConnector:
    """A connector for ``url`` that connects only to addresses the policy admits for it: any for an
    allow-listed URL, else public ones (the resolver checks what a name resolves to, which is what
    the connection then uses). Per URL, not per host: a prefix entry trusts its host's names only
    under the prefix."""
    trusted = policy.allow_private or allowlisted(url, policy.allowlist)
    return aiohttp.TCPConnector(resolver=None if trusted else PublicOnlyResolver())


def allowlisted(url: str, allowlist: Tuple[str, ...]) -> bool:
    """An entry with ``://`` is a URL prefix; any other entry is a host name (exact, any case).
    URLs are compared by their parsed parts, never as strings: ``https://trusted@10.0.0.1/``
    starts with ``https://trusted`` but its host is 10.0.0.1."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return any(_under_prefix(parts, entry) if "://" in entry else host == entry.lower() for entry in allowlist)


def _under_prefix(parts, entry: str) -> bool:
    prefix = urlsplit(entry)
    if parts.username is not None or parts.password is not None:
        return False  # credentials in a URL are never taken for a trusted source
    same_origin = (parts.scheme, (parts.hostname or "").lower(), _port(parts)) == (
        prefix.scheme, (prefix.hostname or "").lower(), _port(prefix))
    base = prefix.path.rstrip("/")
    # A dot segment, written or percent-encoded, is resolved by the server: /media/../admin is /admin
    # (and /media/..;/admin, where Java servers take what follows ';' for a path parameter).
    if any(segment.split(";")[0] in (".", "..") for segment in re.split(r"[/\\]", unquote(parts.path))):
        return False
    return same_origin and (parts.path == base or parts.path.startswith(base + "/"))


def _port(parts) -> int:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)


# What may stand in a request's path and query as it is: all printable ASCII but for what RFC 3986
# never allows there (space, " < > \ ^ ` { | }); '%' so that the escapes given stay as given.
_KEPT_AS_GIVEN = "!$&'()*+,/:;=?@[]~%"


def wire_url(url: str) -> URL:
    """``url`` as it goes on the wire: its path and query byte for byte as given, only spaces,
    non-ASCII and the like percent-encoded (UTF-8, or the raw bytes a Location header carried).
    yarl left to itself re-quotes them, turning a query's ``%2F`` into ``/`` and ``%3a`` into
    ``:``, which breaks a signature computed over the query as written (a CDN token, a presigned URL)."""
    parts, parsed = urlsplit(url), URL(url)  # yarl for the authority: IDNA host, port, credentials
    return URL.build(scheme=parsed.scheme, authority=parsed.raw_authority, path=_quoted(parts.path) or "/",
                     query_string=_quoted(parts.query), encoded=True)


def _quoted(part: str) -> str:
    # surrogateescape: a redirect's Location of raw non-UTF-8 bytes (aiohttp keeps them as
    # surrogates) is asked for as those bytes, percent-encoded
    return quote(part, safe=_KEPT_AS_GIVEN, errors="surrogateescape")


HIDDEN = "***"
# the scheme is optional: a redirect's Location may be a network-path reference (//user:pass@host/)
_AUTHORITY = re.compile(r"(?P<scheme>(?:[A-Za-z][A-Za-z0-9+.-]*:)?//)(?P<userinfo>[^/?#]*)@(?P<host>[^@/?#]*)")


def without_credentials(url: str) -> str:
    """``url`` as it may be shown (a task's params, the dashboard, a webhook's body, an error): a
    password in its user info hidden, and a user name alone too, since that is how tokens ride in a
    URL (``https://TOKEN@host/``). The record keeps the URL as sent; a task runs with it."""
    match = _AUTHORITY.match(url)
    if match is None:
        return url
    user, colon, _ = match["userinfo"].partition(":")
    shown = f"{user}:{HIDDEN}" if colon and user else HIDDEN
    return f"{match['scheme']}{shown}@{match['host']}{url[match.end():]}"


def check_url(url: str, policy: FetchPolicy) -> None:
    """Refuses what may not be fetched; allow-listed URLs may be on private networks (trusted
    internal sources), everything else must be a public address."""
    try:
        scheme, host = urlsplit(url).scheme, _connected_host(url)
        host.encode("idna")  # as the resolver will: an empty or over-long label (a..b) fails there, unexplained
    except ValueError as exc:  # urlsplit refuses a bracketed host that is no address ([1:2]), yarl a bad port
        raise FetchError(f"invalid URL: {exc}") from None
    if scheme not in HTTP_SCHEMES:
        raise FetchError(f"unsupported URL scheme {scheme!r}; use http or https")
    if not host:
        raise FetchError(f"URL has no host: {without_credentials(url)}")
    legacy = _legacy_ipv4(host)
    if legacy is not None:  # 127.1, 2130706433, 0x7f000001, 0177.0.0.1: say what they mean
        raise FetchError(f"refused to fetch from {host}: a non-canonical form of the IP address {legacy}")
    if policy.allow_private or allowlisted(url, policy.allowlist):
        return
    try:
        reason = address_refusal(host)
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if reason:
        raise FetchError(f"refused to fetch from {host}: it is a {reason}")


def _connected_host(url: str) -> str:
    """The host as the connection names it (yarl's parse, which aiohttp uses): IDNA maps Unicode
    digits and dots to ASCII, so ``１２７.0.0.1`` is the address 127.0.0.1, which is connected to
    without the resolver, not a name for the resolver to check."""
    return URL(url).raw_host or ""


def _legacy_ipv4(host: str) -> Optional[str]:
    """The address a host written in an old inet_aton form stands for, or ``None``."""
    try:
        ipaddress.ip_address(host)
        return None  # canonical
    except ValueError:
        pass
    if not all(c in "0123456789abcdefx." for c in host.lower()):
        return None
    try:
        return str(ipaddress.IPv4Address(socket.inet_aton(host)))
    except OSError:
        return None


class RateFloor:
    """The slowest a sender may be: at least ``bytes_per_s`` on average over each window of
    ``window_s`` seconds (0 bytes a second: no floor). A sender trickling a byte now and then is
    never silent for long, so no read timeout cuts it; this does, after one window. The first
    window begins at ``start`` (or the first bytes counted). ``since_start``: on average since
    then instead, a window's worth of the floor allowed behind (a client pausing longer than a
    window, a phone changing cells, keeps its place where its bytes so far keep the floor)."""

    def __init__(self, bytes_per_s: float, window_s: float, since_start: bool = False):
        self.bytes_per_s = bytes_per_s
        self.window_s = window_s
        self.since_start = since_start
        self.counted = 0
        self._window: Optional[Tuple[float, int]] = None  # when the window began, and the bytes counted by then

    def start(self) -> None:
        if self._window is None:
            self._window = (time.monotonic(), self.counted)

    def count(self, size: int) -> None:
        self.start()
        self.counted += size

    @property
    def judged_at(self) -> float:
        """When the window under way ends (``time.monotonic``'s clock); never with no floor."""
        if not self.bytes_per_s or self._window is None:
            return float("inf")
        if self.since_start:  # when the bytes so far fall a window behind the floor
            return self._window[0] + self.window_s + (self.counted - self._window[1]) / self.bytes_per_s
        return self._window[0] + self.window_s

    def shortfall(self) -> Optional[Tuple[int, float]]:
        """At or past a window's end: the bytes that window brought and its seconds if they fall
        short of the floor, else ``None`` and the next window begins. ``None`` before the end."""
        if self._window is None or time.monotonic() < self.judged_at:
            return None
        began, before = self._window
        elapsed, sent = time.monotonic() - began, self.counted - before
        if self.since_start or sent < self.bytes_per_s * elapsed:
            return sent, elapsed
        self._window = (time.monotonic(), self.counted)
        return None


class CappedFile:
    """A file written chunk by chunk that refuses to grow past ``max_bytes``: the one size cap of
    every stream to disk (HTTP downloads, OSS objects). A declared length over the cap is refused
    before anything is written; the running count holds when the length lies or is absent.
    ``floor``: (bytes a second, window in seconds), a ``RateFloor`` on the sender: a server sending
    a byte now and then held its task's worker slot for the whole total timeout (30 minutes by
    default). The first window begins at the first byte: a server that took most of a window to
    start would be judged on the rest, and the wait for that byte is the read timeout's."""

    def __init__(self, dest: Path, max_bytes: int, declared: Optional[int] = None,
                 floor: Tuple[float, float] = (0.0, 0.0)):
        if declared is not None and declared > max_bytes:
            raise FetchError(f"input is {declared:,} bytes, over the limit of {max_bytes:,}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.written = 0
        self._max_bytes = max_bytes
        self._floor = RateFloor(*floor)
        self._out = open(dest, "wb")

    def write(self, chunk: bytes) -> None:
        self.written += len(chunk)
        if self.written > self._max_bytes:
            raise FetchError(f"input is over the limit of {self._max_bytes:,} bytes")
        self._floor.count(len(chunk))
        short = self._floor.shortfall()
        if short is not None:
            sent, elapsed = short
            raise FetchError(f"the input's server sent {sent:,} bytes in {elapsed:.0f} s, slower than the "
                             f"floor of {self._floor.bytes_per_s:,.0f} bytes a second (download_min_bytes_per_s)")
        self._out.write(chunk)

    def __enter__(self) -> "CappedFile":
        return self

    def __exit__(self, *_: Any) -> None:
        self._out.close()
