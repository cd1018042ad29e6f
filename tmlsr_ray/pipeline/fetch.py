"""The download stage: stream an input URL to a file (no Ray here), under the address policy and
size cap of :mod:`tmlsr_ray.urls`; redirects are followed by hand so each hop is checked."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Optional
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.http_exceptions import ContentLengthError

from tmlsr_ray.errors import FetchError, StorageError
from tmlsr_ray.retry import Backoff, RetriesExhausted, TryAgain, retry, retry_after_s
from tmlsr_ray.urls import (CHUNK_BYTES, HTTP_SCHEMES, INPUT_SCHEMES, CappedFile, FetchPolicy, check_url,
                            checked_connector, host_not_found, wire_url, without_credentials)

if TYPE_CHECKING:
    from tmlsr_ray.storage.oss import OssConfig

REDIRECT_CODES = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    bytes: int
    content_type: Optional[str]
    final_url: str


async def fetch_http(url: str, dest: Path, policy: FetchPolicy) -> FetchResult:
    """Downloads ``url`` to ``dest``, retrying connection errors, stalls, 429 and 5xx answers with
    back-off (or the longer pause a Retry-After asks for)."""
    return await _with_retries(lambda: _fetch_once(url, dest, policy), policy, TryAgain)


async def _with_retries(attempt, policy: FetchPolicy, retryable):
    """A download asked again with the policy's back-off while it fails in a way worth another try."""
    try:
        return await retry(attempt, Backoff(policy.attempts, policy.backoff_s), retryable)
    except RetriesExhausted as exc:
        raise FetchError(f"download {exc}") from exc


async def _fetch_once(url: str, dest: Path, policy: FetchPolicy) -> FetchResult:
    """One try at the download, redirects included, mapping what went wrong to "try again" or a
    failure. ``total_timeout_s`` spans every hop: a chain of slow redirects cannot outlast it."""
    try:
        async with asyncio.timeout(policy.total_timeout_s):
            return await _follow(url, dest, policy)
    except FetchError:
        raise
    except aiohttp.ServerTimeoutError as exc:  # no connection, or no bytes, within its timeout: worth another try
        raise TryAgain(f"timed out ({_describe(exc)})") from exc
    except TimeoutError as exc:  # the whole download took total_timeout_s: another would too
        raise FetchError("download timed out") from exc
    except aiohttp.ClientConnectorDNSError as exc:
        if host_not_found(exc):
            host = getattr(exc, "host", None) or urlsplit(url).hostname  # after a redirect: the host it named
            raise FetchError(f"the input's host {host} does not exist (DNS: name not found)") from exc
        raise TryAgain(_describe(exc)) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise TryAgain(_describe(exc)) from exc
    except aiohttp.ClientResponseError as exc:  # nothing here raises for a status: aiohttp's parser refused the answer
        raise FetchError(f"download failed: the input's server answered in something that is not valid HTTP "
                         f"({_parser_complaint(exc)})") from exc
    except aiohttp.ClientError as exc:
        raise FetchError(f"download failed: {_describe(exc)}") from exc


async def _follow(url: str, dest: Path, policy: FetchPolicy) -> FetchResult:
    """Asks for ``url``, and for where each redirect sends it, checking every hop's address."""
    timeout = aiohttp.ClientTimeout(sock_connect=policy.connect_timeout_s, sock_read=policy.read_timeout_s)
    current = url
    cookies = aiohttp.CookieJar()  # one for all hops: a redirect may set a cookie the next hop wants
    for _ in range(policy.max_redirects + 1):
        check_url(current, policy)
        # a session per hop: which addresses a hop may reach depends on its URL (the allow-list)
        async with aiohttp.ClientSession(timeout=timeout, connector=checked_connector(policy, current),
                                         cookie_jar=cookies) as session:
            # as stored: media is compressed already, and aiohttp checks no gzip trailer (a gzip
            # body cut short, complete as HTTP, was saved short)
            async with session.get(wire_url(current), allow_redirects=False,
                                   headers={"Accept-Encoding": "identity"}) as response:
                if response.status in REDIRECT_CODES and "Location" in response.headers:
                    current = _redirected(current, response.headers["Location"])
                    continue
                return await _save(response, current, dest, policy)
    raise FetchError(f"too many redirects (more than {policy.max_redirects})")


async def _save(response: aiohttp.ClientResponse, url: str, dest: Path, policy: FetchPolicy) -> FetchResult:
    """The answer that is not a redirect to follow: the input, or why there is none."""
    if response.status == 429 or response.status >= 500:
        raise TryAgain(f"HTTP {response.status} from {urlsplit(url).hostname}",
                       retry_after_s(response.headers.get("Retry-After")))
    if response.status >= 300:  # a 3xx here is one that cannot be followed: no input
        unfollowed = " without a Location" if response.status in REDIRECT_CODES else ""
        raise FetchError(f"input URL answered HTTP {response.status} {response.reason}{unfollowed}")
    size = await _stream_to_file(response, dest, policy)
    content_type = response.headers.get("Content-Type")
    _refuse_web_page(dest, content_type)
    return FetchResult(dest, size, content_type, url)


def _redirected(url: str, location: str) -> str:
    """Where a Location sends ``url`` (check_url then judges it)."""
    try:
        return urljoin(url, location)
    except ValueError as exc:  # urlsplit refuses a bracketed host that is no address: [1:2], [::1
        shown = without_credentials(location)[:200]  # a task's error is read by more than its owner
        raise FetchError(f"input URL redirected to an invalid URL ({exc}): {shown}") from None


def _refuse_web_page(path: Path, content_type: Optional[str]) -> None:
    """An HTML page where the input should be (a share link's landing page, a sign-in page answered
    with 200) is refused by name: the decoder would only say it found no image or video in it. The
    body decides too, so media a server mislabels as text/html still goes through."""
    if (content_type or "").split(";")[0].strip().lower() != "text/html":
        return
    with open(path, "rb") as body:
        start = body.read(1024).lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()
    if start.startswith(b"<"):
        raise FetchError("input URL answered a web page (text/html), not an image or video: a share or "
                         "sign-in page? Give the file's direct download URL")


def _parser_complaint(exc: aiohttp.ClientResponseError) -> str:
    """What aiohttp's parser found wrong, without the 400 it files it under (no server said 400)
    or the bytes it quotes (the input's, or another service's banner: a task's error is read by more
    than its owner)."""
    return " ".join(exc.message.split(":")[0].split())[:100]


def _describe(exc: Exception, limit: int = 200) -> str:
    """A one-line, bounded description: a broken server can put anything in an error."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= limit else text[:limit] + "…"
    return f"{type(exc).__name__}: {text}"


async def _stream_to_file(response: aiohttp.ClientResponse, dest: Path, policy: FetchPolicy) -> int:
    floor = (policy.min_bytes_per_s, policy.rate_window_s)
    with CappedFile(dest, policy.max_bytes, response.content_length, floor) as out:
        try:
            async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                out.write(chunk)
        except aiohttp.ClientPayloadError as exc:
            # aiohttp files a body cut short under a 400 no server sent: said in words, still worth another try
            if isinstance(exc.__cause__, ContentLengthError):
                raise TryAgain(f"the input's server closed the connection after {out.written:,} of the "
                               f"{response.content_length:,} bytes it stated") from exc
            raise
    if out.written == 0:
        raise FetchError("input URL returned an empty body")
    return out.written


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
        size = await _with_retries(lambda: asyncio.to_thread(download, config, bucket, key, dest, policy.max_bytes),
                                   policy, lambda error: isinstance(error, StorageError) and error.transient)
        return FetchResult(dest, size, None, url)
    if scheme in HTTP_SCHEMES:
        return await fetch_http(url, dest, policy)
    raise FetchError(f"unsupported URL scheme {scheme!r}; use http, https or oss")
