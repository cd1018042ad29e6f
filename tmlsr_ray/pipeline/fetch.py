"""The download stage: stream an input URL to a file (no Ray here).

Addresses are checked where they are resolved (a resolver that refuses non-public addresses), so the
connection goes to the address that was checked; IP literals, which skip the resolver, are checked
per redirect hop, and redirects are followed by hand for that reason.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from tmlsr_ray.pipeline.errors import FetchError

if TYPE_CHECKING:
    from tmlsr_ray.storage.oss import OssConfig

HTTP_SCHEMES = ("http", "https")
INPUT_SCHEMES = HTTP_SCHEMES + ("oss",)
REDIRECT_CODES = (301, 302, 303, 307, 308)
CHUNK_BYTES = 1 << 20
NAME_NOT_FOUND = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    allowlist: Tuple[str, ...] = ()  # URL prefixes or host names trusted even on private networks
    max_bytes: int = 2 * 1024**3
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    total_timeout_s: float = 1800.0
    max_redirects: int = 5
    attempts: int = 3
    backoff_s: float = 0.5


@dataclass(frozen=True)
class FetchResult:
    path: Path
    bytes: int
    content_type: Optional[str]
    final_url: str


def address_refusal(address: str) -> Optional[str]:
    """Why an address may not be fetched from, or ``None`` when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
    for flag in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{flag}"):
            return f"{flag.replace('_', '-')} address {ip}"
    if not ip.is_global:
        return f"non-public address {ip}"
    return None


class PublicOnlyResolver(AbstractResolver):
    """Resolves names and refuses any answer that is not a public address (but for trusted names)."""

    def __init__(self, trusted_hosts: frozenset = frozenset()) -> None:
        self._inner = ThreadedResolver()
        self._trusted = trusted_hosts

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> List[Dict[str, Any]]:
        hosts = await self._inner.resolve(host, port, family)
        if host.lower() in self._trusted:
            return hosts
        for entry in hosts:
            reason = address_refusal(entry["host"])
            if reason:
                raise FetchError(f"refused to fetch from {host}: it resolves to a {reason}")
        return hosts

    async def close(self) -> None:
        await self._inner.close()


def checked_connector(policy: FetchPolicy) -> aiohttp.TCPConnector:
    """A connector that connects only to addresses the policy admits (the resolver checks what
    a name resolves to, which is what the connection then uses)."""
    resolver = None if policy.allow_private else PublicOnlyResolver(allowlisted_hosts(policy.allowlist))
    return aiohttp.TCPConnector(resolver=resolver)


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
    return same_origin and (parts.path == base or parts.path.startswith(base + "/"))


def _port(parts) -> int:
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)


def allowlisted_hosts(allowlist: Tuple[str, ...]) -> frozenset:
    """The host names the allow-list trusts, for the resolver (which sees names, not URLs)."""
    return frozenset((urlsplit(e).hostname if "://" in e else e).lower() for e in allowlist) - {None}


def check_url(url: str, allow_private: bool, allowlist: Tuple[str, ...] = ()) -> None:
    """Refuses what may not be fetched; allow-listed URLs may be on private networks (trusted
    internal sources), everything else must be a public address."""
    parts = urlsplit(url)
    if parts.scheme not in HTTP_SCHEMES:
        raise FetchError(f"unsupported URL scheme {parts.scheme!r}; use http or https")
    if not parts.hostname:
        raise FetchError(f"URL has no host: {url}")
    legacy = _legacy_ipv4(parts.hostname)
    if legacy is not None:  # 127.1, 2130706433, 0x7f000001, 0177.0.0.1: say what they mean
        raise FetchError(f"refused to fetch from {parts.hostname}: a non-canonical form of the IP address {legacy}")
    if allow_private or allowlisted(url, allowlist):
        return
    try:
        reason = address_refusal(parts.hostname)
    except ValueError:
        return  # a name: the resolver checks what it resolves to
    if reason:
        raise FetchError(f"refused to fetch from {parts.hostname}: it is a {reason}")


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


async def fetch_http(url: str, dest: Path, policy: FetchPolicy) -> FetchResult:
    """Downloads ``url`` to ``dest``, retrying connection errors and 5xx answers with back-off."""
    last_error: Optional[Exception] = None
    for attempt in range(policy.attempts):
        if attempt:
            await asyncio.sleep(policy.backoff_s * 2 ** (attempt - 1))
        try:
            return await _fetch_once(url, dest, policy)
        except _Retryable as exc:
            last_error = exc
    raise FetchError(f"download failed after {policy.attempts} attempts: {last_error}")


class _Retryable(Exception):
    pass


async def _fetch_once(url: str, dest: Path, policy: FetchPolicy) -> FetchResult:
    timeout = aiohttp.ClientTimeout(
        total=policy.total_timeout_s, sock_connect=policy.connect_timeout_s, sock_read=policy.read_timeout_s
    )
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=checked_connector(policy)) as session:
            current = url
            for _ in range(policy.max_redirects + 1):
                check_url(current, policy.allow_private, policy.allowlist)
                async with session.get(current, allow_redirects=False) as response:
                    if response.status in REDIRECT_CODES and "Location" in response.headers:
                        current = urljoin(current, response.headers["Location"])
                        continue
                    if response.status >= 500:
                        raise _Retryable(f"HTTP {response.status} from {urlsplit(current).hostname}")
                    if response.status >= 400:
                        raise FetchError(f"input URL answered HTTP {response.status} {response.reason}")
                    size = await _stream_to_file(response, dest, policy.max_bytes)
                    return FetchResult(dest, size, response.headers.get("Content-Type"), current)
            raise FetchError(f"too many redirects (more than {policy.max_redirects})")
    except FetchError:
        raise
    except asyncio.TimeoutError as exc:
        raise FetchError("download timed out") from exc
    except aiohttp.ClientConnectorDNSError as exc:
        if getattr(exc.os_error, "errno", None) in NAME_NOT_FOUND:  # asking again will not make it exist
            raise FetchError(f"the input's host {urlsplit(url).hostname} does not exist (DNS: name not found)") from exc
        raise _Retryable(_describe(exc)) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise _Retryable(_describe(exc)) from exc
    except aiohttp.ClientError as exc:
        raise FetchError(f"download failed: {_describe(exc)}") from exc


def _describe(exc: Exception, limit: int = 200) -> str:
    """A one-line, bounded description: a broken server can put anything in an error."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[:limit] + "…"
    return f"{type(exc).__name__}: {text}"


async def _stream_to_file(response: aiohttp.ClientResponse, dest: Path, max_bytes: int) -> int:
    if response.content_length is not None and response.content_length > max_bytes:
        raise FetchError(f"input is {response.content_length:,} bytes, over the limit of {max_bytes:,}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dest, "wb") as out:
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            written += len(chunk)
            if written > max_bytes:  # Content-Length may lie or be absent
                raise FetchError(f"input is over the limit of {max_bytes:,} bytes")
            out.write(chunk)
    if written == 0:
        raise FetchError("input URL returned an empty body")
    return written


async def fetch_input(url: str, dest: Path, policy: FetchPolicy, oss: Optional["OssConfig"] = None) -> FetchResult:
    """Downloads an input: OSS objects through oss2 (the configured, trusted endpoint and
    credentials), anything else over HTTP(S) under the policy's address checks."""
    from tmlsr_ray.storage.oss import download, parse_oss_url

    scheme = urlsplit(url).scheme
    location = parse_oss_url(url, oss) if scheme in INPUT_SCHEMES else None
    if location is not None:
        if oss is None:
            raise FetchError("oss:// inputs need OSS credentials (oss_access_key_id, oss_access_key_secret, "
                             "oss_endpoint), which this service has not been given")
        bucket, key, endpoint = location
        config = oss if endpoint is None else replace(oss, endpoint=endpoint)
        size = await asyncio.to_thread(download, config, bucket, key, dest, policy.max_bytes)
        return FetchResult(dest, size, None, url)
    if scheme in HTTP_SCHEMES:
        return await fetch_http(url, dest, policy)
    raise FetchError(f"unsupported URL scheme {scheme!r}; use http, https or oss")
