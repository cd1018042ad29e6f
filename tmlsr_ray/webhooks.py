"""Webhooks: a signed JSON POST to a task's ``callback_url`` (no Ray here).

The body is the task as ``GET /tasks/{id}`` shows it, plus ``event``. With a secret configured, the
header ``X-TMLSR-Signature: sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes under it, so
the receiver checks the body it got before it parses it. The same address rules as for inputs
apply (public addresses only unless allowed; the resolver checks what it connects to), and
redirects are not followed: a webhook goes where the task said, or nowhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from typing import Optional

import aiohttp

from tmlsr_ray.errors import FetchError
from tmlsr_ray.retry import Backoff, RetriesExhausted, TryAgain, retry, retry_after_s
from tmlsr_ray.urls import FetchPolicy, check_url, checked_connector, host_not_found, wire_url, without_credentials

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-TMLSR-Signature"
EVENT_HEADER = "X-TMLSR-Event"
DELIVERY_HEADER = "X-TMLSR-Delivery"


@dataclass(frozen=True)
class WebhookPolicy:
    secret: Optional[str] = None
    attempts: int = 5
    backoff_s: float = 1.0
    backoff_cap_s: float = 60.0
    timeout_s: float = 10.0
    addresses: FetchPolicy = FetchPolicy()


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(body: bytes, header: Optional[str], secret: str) -> bool:
    """What a receiver does (and what the tests do): compare in constant time."""
    return header is not None and hmac.compare_digest(header, signature(body, secret))


async def deliver(url: str, event: str, body: bytes, policy: WebhookPolicy, delivery_id: Optional[str] = None) -> bool:
    """POSTs ``body``; retries connection errors, timeouts, 429 and 5xx with back-off, under one
    ``delivery_id`` (the receiver's key to drop a repeat). Returns whether the receiver took it
    (2xx). Never raises: a webhook must not break a task."""
    headers = {"Content-Type": "application/json", EVENT_HEADER: event, DELIVERY_HEADER: delivery_id or uuid.uuid4().hex}
    if policy.secret:
        headers[SIGNATURE_HEADER] = signature(body, policy.secret)
    shown = without_credentials(url)  # logs are read by more people than the task's owner
    try:
        check_url(url, policy.addresses)
    except FetchError as exc:
        logger.warning("webhook to %s not sent: %s", shown, exc)
        return False
    try:
        return await retry(lambda: _post_once(url, body, headers, policy),
                           Backoff(policy.attempts, policy.backoff_s, policy.backoff_cap_s), TryAgain)
    except RetriesExhausted:
        logger.warning("webhook %s to %s gave up after %d attempts", event, shown, policy.attempts)
        return False


async def _post_once(url: str, body: bytes, headers: dict, policy: WebhookPolicy) -> bool:
    """True: delivered; False: refused for good (4xx); :class:`TryAgain`: worth another try."""
    shown = without_credentials(url)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=policy.timeout_s),
                                         connector=checked_connector(policy.addresses, url)) as session:
            async with session.post(wire_url(url), data=body, headers=headers, allow_redirects=False) as response:
                if response.status < 300:
                    return True
                if response.status == 429 or response.status >= 500:
                    raise TryAgain(f"HTTP {response.status}", retry_after_s(response.headers.get("Retry-After")))
                logger.warning("webhook to %s refused: HTTP %d", shown, response.status)
                return False
    except FetchError as exc:  # the resolver refused the address
        logger.warning("webhook to %s not sent: %s", shown, exc)
        return False
    except aiohttp.ClientConnectorDNSError as exc:
        if host_not_found(exc):
            logger.warning("webhook to %s not sent: its host does not exist (DNS: name not found)", shown)
            return False
        logger.info("webhook to %s failed (DNS: %s); will retry", shown, exc.os_error)
        raise TryAgain(type(exc).__name__) from exc
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        logger.info("webhook to %s failed (%s); will retry", shown, type(exc).__name__)
        raise TryAgain(type(exc).__name__) from exc

