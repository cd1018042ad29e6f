import asyncio
from urllib.parse import quote

import pytest

from tmlsr_ray.pipeline.errors import FetchError
from tmlsr_ray.pipeline.fetch import FetchPolicy, address_refusal, fetch_input

TRUSTED = FetchPolicy(allow_private=True, attempts=2, backoff_s=0.01)


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
     "100.64.0.1", "::1", "::", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254"],
)
def test_non_public_addresses_are_refused(address):
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(address) is None


def run(coro):
    return asyncio.run(coro)


def test_download_streams_the_body_to_a_file(input_server, tmp_path):
    url = input_server.add("blob.bin", b"x" * 300_000)
    result = run(fetch_input(url, tmp_path / "in", TRUSTED))
    assert result.bytes == 300_000 and (tmp_path / "in").read_bytes() == b"x" * 300_000


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/x"])
def test_loopback_is_refused_unless_private_urls_are_allowed(url, tmp_path):
    with pytest.raises(FetchError, match="refused"):
        run(fetch_input(url, tmp_path / "in", FetchPolicy(allow_private=False)))


def test_redirects_are_followed(input_server, tmp_path):
    target = input_server.add("target.bin", b"z" * 10)
    result = run(fetch_input(input_server.url(f"redirect?to={target}"), tmp_path / "in", TRUSTED))
    assert result.bytes == 10 and result.final_url == target


def test_redirect_chains_longer_than_five_hops_are_refused(input_server, tmp_path):
    url = input_server.add("end.bin", b"e")
    for _ in range(6):
        url = input_server.url("redirect?to=" + quote(url, safe=""))
    with pytest.raises(FetchError, match="too many redirects"):
        run(fetch_input(url, tmp_path / "in", TRUSTED))


def test_bodies_over_the_size_limit_are_refused(input_server, tmp_path):
    url = input_server.add("big.bin", b"y" * 10_000)
    with pytest.raises(FetchError, match="over the limit"):
        run(fetch_input(url, tmp_path / "in", FetchPolicy(allow_private=True, max_bytes=1000)))


def test_http_errors_are_reported_with_their_status(input_server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        run(fetch_input(input_server.url("missing.png"), tmp_path / "in", TRUSTED))


def test_server_errors_are_retried_then_reported(input_server, tmp_path):
    with pytest.raises(FetchError, match="after 2 attempts: HTTP 503"):
        run(fetch_input(input_server.url("status/503"), tmp_path / "in", TRUSTED))


def test_unknown_schemes_are_refused(tmp_path):
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        run(fetch_input("ftp://example.com/a.png", tmp_path / "in", TRUSTED))
