"""Webhook delivery: signed bodies, retries with back-off, the address rules, no redirects."""

import asyncio
import json
import time

import pytest

from tests.helpers import WebhookReceiver
from tmlsr_ray.urls import FetchPolicy
from tmlsr_ray.state.records import wants_webhook
from tmlsr_ray.webhooks import SIGNATURE_HEADER, WebhookPolicy, deliver, signature_ok

LOOPBACK_OK = FetchPolicy(allow_private=True)
BODY = json.dumps({"event": "task.completed", "task_id": "t1"}).encode()


@pytest.fixture
def receiver(request):
    server = WebhookReceiver(getattr(request, "param", ()))
    yield server
    server.close()


def send(url: str, policy: WebhookPolicy) -> bool:
    return asyncio.run(deliver(url, "task.completed", BODY, policy))


def test_the_body_is_signed_with_hmac_sha256_of_the_exact_bytes(receiver):
    assert send(receiver.url, WebhookPolicy(secret="k3y", addresses=LOOPBACK_OK))
    (_, headers, body), = receiver.received
    assert body == BODY and headers["X-TMLSR-Event"] == "task.completed"
    assert signature_ok(body, headers[SIGNATURE_HEADER], "k3y")
    assert not signature_ok(body + b" ", headers[SIGNATURE_HEADER], "k3y")
    assert not signature_ok(body, headers[SIGNATURE_HEADER], "other")


def test_without_a_secret_no_signature_is_sent(receiver):
    assert send(receiver.url, WebhookPolicy(addresses=LOOPBACK_OK))
    assert SIGNATURE_HEADER not in receiver.received[0][1]


def test_a_callback_urls_signed_query_reaches_the_receiver_byte_for_byte(receiver):
    assert send(receiver.url + "?token=ab%2Fcd%2B%3D%3a", WebhookPolicy(addresses=LOOPBACK_OK))
    assert receiver.received[0][0] == "/hook?token=ab%2Fcd%2B%3D%3a"


@pytest.mark.parametrize("receiver", [(500, 429, 503)], indirect=True)
def test_server_errors_and_429_are_retried_until_delivered(receiver):
    assert send(receiver.url, WebhookPolicy(addresses=LOOPBACK_OK, attempts=4, backoff_s=0.01))
    assert len(receiver.received) == 4
    assert len({headers["X-TMLSR-Delivery"] for _, headers, _ in receiver.received}) == 1  # one delivery id


def test_a_busy_receiver_is_asked_again_after_the_pause_its_retry_after_asks_for():
    receiver = WebhookReceiver((429,), retry_after="1")
    try:
        started = time.monotonic()
        assert send(receiver.url, WebhookPolicy(addresses=LOOPBACK_OK, attempts=2, backoff_s=0.01))
        assert time.monotonic() - started >= 1 and len(receiver.received) == 2
    finally:
        receiver.close()


def test_a_retry_after_that_is_no_number_of_seconds_is_retried_on_the_back_off():
    receiver = WebhookReceiver((503,), retry_after="²".encode().decode("latin-1"))  # UTF-8 bytes on the wire
    try:
        assert send(receiver.url, WebhookPolicy(addresses=LOOPBACK_OK, attempts=2, backoff_s=0.01))
        assert len(receiver.received) == 2
    finally:
        receiver.close()


def test_a_callback_host_dns_cannot_carry_is_not_sent_and_deliver_does_not_raise():
    """callback_url http://a..b/ passes the API's syntax check (its host reads as hex and dots);
    the resolver's IDNA encoding raised UnicodeError out of deliver, so the outbox never settled
    it and sent it again at once, without end."""
    assert not send("http://a..b/hook", WebhookPolicy(attempts=1))


@pytest.mark.parametrize("receiver", [(400,)], indirect=True)
def test_a_client_error_is_final(receiver):
    assert not send(receiver.url, WebhookPolicy(addresses=LOOPBACK_OK, attempts=3, backoff_s=0.01))
    assert len(receiver.received) == 1


@pytest.mark.parametrize("receiver", [(400,)], indirect=True)
def test_the_log_names_a_callback_url_without_its_credentials(receiver, caplog):
    """A token in the callback URL's user info showed in the service's log at each failed try."""
    caplog.set_level("INFO", logger="tmlsr_ray.webhooks")
    with_token = receiver.url.replace("http://", "http://hook-user:s3cret@")
    assert not send(with_token, WebhookPolicy(addresses=LOOPBACK_OK, attempts=1))  # refused: 400
    assert not send(with_token, WebhookPolicy(attempts=1))  # a loopback address, not allowed
    assert not send("http://s3cret@127.0.0.1:9/hook", WebhookPolicy(addresses=LOOPBACK_OK, attempts=2, backoff_s=0.01))
    assert len(caplog.records) == 5 and "hook-user:***@" in caplog.text and "s3cret" not in caplog.text


def test_an_unreachable_receiver_gives_up_after_the_attempts():
    policy = WebhookPolicy(addresses=LOOPBACK_OK, attempts=2, backoff_s=0.01, timeout_s=1)
    assert not send("http://127.0.0.1:9/hook", policy)


def test_a_host_that_does_not_exist_is_given_up_at_once():
    """As for inputs: DNS saying the name does not exist will not change on the next try (eight
    tries over two minutes before)."""
    import time

    started = time.monotonic()
    assert not send("http://no-such-host.invalid/hook", WebhookPolicy(attempts=5, backoff_s=2))
    assert time.monotonic() - started < 2


def test_a_loopback_receiver_is_refused_unless_private_addresses_are_allowed(receiver):
    assert not send(receiver.url, WebhookPolicy(attempts=1))
    assert receiver.received == []  # refused before connecting
    assert send(receiver.url, WebhookPolicy(attempts=1, addresses=LOOPBACK_OK))


def test_a_name_that_resolves_to_loopback_is_refused_by_the_resolver(receiver):
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    assert not send(by_name, WebhookPolicy(attempts=1))
    assert receiver.received == []


def test_an_address_written_in_unicode_digits_is_refused_as_the_address_it_stands_for(receiver):
    fullwidth = receiver.url.replace("127.0.0.1", "１２７.０.０.１")
    assert not send(fullwidth, WebhookPolicy(attempts=1))
    assert receiver.received == []


@pytest.mark.parametrize("url", ["http://10.0.0.8/hook", "http://[::1]/hook", "http://169.254.169.254/hook"])
def test_private_literal_addresses_are_refused(url):
    assert not send(url, WebhookPolicy(attempts=1, timeout_s=1))


@pytest.mark.parametrize("receiver", [(307,)], indirect=True)  # 307 would repeat the POST at /moved
def test_redirects_are_not_followed(receiver):
    assert not send(receiver.url, WebhookPolicy(addresses=LOOPBACK_OK, attempts=1))
    assert [path for path, _, _ in receiver.received] == ["/hook"]  # /moved was never asked for


@pytest.mark.parametrize("params,sent", [
    ({}, {"completed", "failed", "canceled"}),  # as before callback_events: the end events
    ({"callback_progress": True}, {"completed", "failed", "canceled", "progress"}),
    ({"callback_events": ["failed", "canceled"]}, {"failed", "canceled"}),
    ({"callback_events": ["progress"]}, {"progress"}),
    ({"callback_events": ["completed"], "callback_progress": True}, {"completed", "progress"}),
])
def test_a_task_gets_the_webhook_events_it_chose(params, sent):
    events = ("completed", "failed", "canceled", "progress")
    assert {event for event in events if wants_webhook({"callback_url": "http://hooks/", **params}, "task." + event)} == sent
    assert not any(wants_webhook(params, "task." + event) for event in events)  # no callback_url, no events
