import asyncio
from urllib.parse import quote

import pytest

from tmlsr_ray.errors import FetchError
from tmlsr_ray.pipeline.fetch import fetch_input
from tmlsr_ray.urls import FetchPolicy, check_url

TRUSTED = FetchPolicy(allow_private=True, attempts=2, backoff_s=0.01)


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


def test_a_redirect_to_a_location_of_raw_latin_1_bytes_asks_for_those_bytes_percent_encoded(input_server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):  # the Location sent is /status/404?name=v\xe9
        run(fetch_input(input_server.url("redirect?to=/status/404%3Fname%3Dv%E9"), tmp_path / "in", TRUSTED))
    assert input_server.fetches("status/404?name=v%E9") == 1


@pytest.mark.parametrize("location", ["http://[1:2]/x", "http://[::ffff:0177.0.0.1]/", "http://[::1/", "//[zz]/"])
def test_a_redirect_to_a_malformed_url_fails_the_download_saying_so(input_server, location, tmp_path):
    """urlsplit refuses a bracketed host that is no IP address: the bare ValueError failed the
    task as an "internal error" (and a crash in the log) for a broken server's Location."""
    with pytest.raises(FetchError, match="invalid URL"):
        run(fetch_input(input_server.url("redirect?to=" + quote(location, safe="")), tmp_path / "in", TRUSTED))


@pytest.mark.parametrize("location", ["http://user:secret@[1:2]/x", "//user:secret@[::1/x", "//secret@[zz]/x"])
def test_a_redirect_to_a_malformed_url_is_quoted_without_its_credentials(input_server, location, tmp_path):
    """The error quotes the Location, and a task's error is read by more than its owner: the
    user info of the Location (a password, or a token as user name) is hidden there too."""
    with pytest.raises(FetchError, match="invalid URL") as refused:
        run(fetch_input(input_server.url("redirect?to=" + quote(location, safe="")), tmp_path / "in", TRUSTED))
    assert "secret" not in str(refused.value) and "***@" in str(refused.value)


@pytest.mark.parametrize("url", ["http://a..b/x.mp4", "http://" + "a" * 64 + ".com/x.mp4"])
def test_a_host_name_dns_cannot_carry_fails_the_download_saying_so(url, tmp_path):
    """An empty or over-63-character label failed in the resolver's IDNA encoding with a bare
    UnicodeError: the task failed as an "internal error"."""
    with pytest.raises(FetchError, match="invalid URL"):
        run(fetch_input(url, tmp_path / "in", FetchPolicy(attempts=1)))


def test_check_url_refuses_a_url_urlsplit_cannot_read_as_a_fetch_error():
    with pytest.raises(FetchError, match="invalid URL"):
        check_url("http://[1:2]/", FetchPolicy())


def test_a_cookie_set_by_a_redirect_goes_with_the_next_hop(input_server, tmp_path):
    """A server that sets a cookie and redirects to itself (a cookie check, a download's confirm
    step) wants it back: with a session per hop the cookie was dropped, and the download failed
    with "too many redirects". (By host name: cookies are not kept for an IP address.)"""
    input_server.add("gated.bin", b"g" * 10)
    url = input_server.url("cookie-gate/gated.bin").replace("127.0.0.1", "localhost")
    result = run(fetch_input(url, tmp_path / "in", TRUSTED))
    assert result.bytes == 10


def test_an_input_is_asked_for_as_it_is_stored_so_a_gzip_body_cut_short_cannot_pass_for_it(input_server, tmp_path):
    """aiohttp checks no gzip trailer: a gzip body complete as HTTP but cut short as gzip was saved
    short. Media is compressed already; asked for as stored, its length is checked as sent."""
    data = bytes(range(256)) * 400
    input_server.add("whole.bin", data)
    result = run(fetch_input(input_server.url("gzip-cut/whole.bin"), tmp_path / "in", TRUSTED))
    assert result.bytes == len(data) and (tmp_path / "in").read_bytes() == data


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


@pytest.mark.parametrize("status, says", [(302, "HTTP 302 Found without a Location"), (300, "HTTP 300 Multiple Choices"),
                                          (304, "HTTP 304 Not Modified")])
def test_a_redirect_that_cannot_be_followed_is_reported_with_its_status(input_server, status, says, tmp_path):
    with pytest.raises(FetchError, match=says):
        run(fetch_input(input_server.url(f"status/{status}"), tmp_path / "in", TRUSTED))


def test_server_errors_are_retried_then_reported(input_server, tmp_path):
    with pytest.raises(FetchError, match="after 2 attempts: HTTP 503"):
        run(fetch_input(input_server.url("status/503"), tmp_path / "in", TRUSTED))


@pytest.mark.parametrize("status", [429, 503])
def test_a_busy_answer_is_asked_again_after_the_pause_its_retry_after_asks_for(input_server, status, tmp_path):
    import time

    input_server.add("busy.bin", b"b" * 100)
    start = time.monotonic()
    result = run(fetch_input(input_server.url(f"busy/busy.bin?status={status}&times=1&retry_after=1"),
                             tmp_path / "in", TRUSTED))
    assert result.bytes == 100 and time.monotonic() - start >= 1.0


SIGNED = "x%3Ay.bin?Signature=ab%2Fcd%2B%3D&hdnts=acl%3d%2f*~hmac%3Dab%40&e=%7e"


def test_a_signed_urls_escapes_reach_the_server_byte_for_byte(input_server, tmp_path):
    input_server.add("x:y.bin", b"signed")
    assert run(fetch_input(input_server.url(SIGNED), tmp_path / "in", TRUSTED)).bytes == 6
    assert input_server.fetches(SIGNED) == 1


def test_spaces_and_unicode_in_a_url_are_sent_percent_encoded(input_server, tmp_path):
    input_server.add("clip é 1.bin", b"unicode")
    url = input_server.url("clip é 1.bin?name=é")
    assert run(fetch_input(url, tmp_path / "in", TRUSTED)).bytes == 7
    assert input_server.fetches("clip%20%C3%A9%201.bin?name=%C3%A9") == 1


def test_a_web_page_answered_for_the_input_is_refused_saying_so(input_server, tmp_path):
    url = input_server.add("share.html", b"\n<!DOCTYPE html><html><body>Sign in to download</body></html>")
    with pytest.raises(FetchError, match="a web page \\(text/html\\), not an image or video"):
        run(fetch_input(url, tmp_path / "in", TRUSTED))
    mislabelled = input_server.add("clip.html", b"\0\0\0\x18ftypmp42")  # media, whatever its type says
    assert run(fetch_input(mislabelled, tmp_path / "in", TRUSTED)).bytes == 12


def test_unknown_schemes_are_refused(tmp_path):
    with pytest.raises(FetchError, match="unsupported URL scheme 'ftp'"):
        run(fetch_input("ftp://example.com/a.png", tmp_path / "in", TRUSTED))


HOSTILE_URLS = [
    "http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/",
    "http://0/", "http://0.0.0.0/", "http://localhost/", "http://LOCALHOST:8080/x", "http://user:pw@127.0.0.1/",
    "http://[::1]/", "http://[::]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/", "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/", "http://2852039166/", "http://0251.0376.0251.0376/",
    "http://[fe80::1]/", "http://[fc00::1]/", "http://[fd12:3456::1]/", "http://224.0.0.1/",
    "http://100.64.0.1/", "http://198.18.0.1/", "http://240.0.0.1/", "http://255.255.255.255/",
    "http://[2002:7f00:1::]/", "file:///etc/passwd", "gopher://127.0.0.1:70/", "ftp://127.0.0.1/",
    # Unicode digits and dots that IDNA maps to an address: what the connection would use
    "http://①②⑦.0.0.1/", "http://１２７.0.0.1/", "http://127。0。0。1/", "http://１６９.２５４.１６９.２５４/",
    "http://１２７.1/",
]


@pytest.mark.parametrize("url", HOSTILE_URLS)
def test_hostile_urls_are_refused_before_any_connection(url, tmp_path):
    with pytest.raises(FetchError, match="refused|unsupported URL scheme"):
        run(fetch_input(url, tmp_path / "in", FetchPolicy(allow_private=False, attempts=1)))
    assert not (tmp_path / "in").exists()


def test_a_redirect_from_an_allowed_host_to_a_private_one_is_refused(input_server, tmp_path):
    target = input_server.add("secret.bin", b"secret")
    url = input_server.url("redirect?to=" + quote(target.replace("127.0.0.1", "localhost"), safe=""))
    policy = FetchPolicy(allow_private=False, allowlist=(input_server.base + "/",), attempts=1)
    with pytest.raises(FetchError, match="refused to fetch from localhost: it resolves to a loopback address"):
        run(fetch_input(url, tmp_path / "in", policy))
    assert not (tmp_path / "in").exists()


def test_allow_listed_sources_are_admitted_on_private_networks(input_server, tmp_path):
    url = input_server.add("listed.bin", b"ok")
    for allowlist in (("127.0.0.1",), (input_server.base + "/",)):
        assert run(fetch_input(url, tmp_path / "a", FetchPolicy(allowlist=allowlist))).bytes == 2
    with pytest.raises(FetchError, match="loopback"):
        run(fetch_input(url, tmp_path / "c", FetchPolicy(allowlist=("http://127.0.0.1:1/",))))
    localhost = url.replace("127.0.0.1", "localhost")  # a DNS name, trusted by the resolver
    assert run(fetch_input(localhost, tmp_path / "d", FetchPolicy(allowlist=("localhost",)))).bytes == 2


def test_a_url_prefix_on_the_allow_list_admits_only_what_is_under_it(input_server, tmp_path):
    (input_server.root / "listed").mkdir(exist_ok=True)
    input_server.add("listed/a.bin", b"in")
    input_server.add("unlisted.bin", b"out")
    for host in ("localhost", "127.0.0.1"):  # a name the resolver sees, an address it does not
        base = input_server.base.replace("127.0.0.1", host)
        policy = FetchPolicy(allowlist=(f"{base}/listed/",), attempts=1)
        assert run(fetch_input(f"{base}/listed/a.bin", tmp_path / "in", policy)).bytes == 2
        for path in ("unlisted.bin", "listed/../unlisted.bin", "listed/%2e%2e/unlisted.bin"):
            with pytest.raises(FetchError, match="loopback"):
                run(fetch_input(f"{base}/{path}", tmp_path / "out", policy))
    assert not (tmp_path / "out").exists()


def test_the_size_limit_holds_without_a_content_length(input_server, tmp_path):
    with pytest.raises(FetchError, match="over the limit of 100,000 bytes"):
        run(fetch_input(input_server.url("chunked?bytes=300000"), tmp_path / "in",
                        FetchPolicy(allow_private=True, max_bytes=100_000)))


def test_a_lying_content_length_never_lets_more_than_it_declares_through(input_server, tmp_path):
    try:
        result = run(fetch_input(input_server.url("lying?declared=10&sent=5000"), tmp_path / "in", TRUSTED))
        assert result.bytes == 10
    except FetchError as exc:  # aiohttp may also reject the stray bytes as a broken response
        assert len(str(exc)) < 300
    assert not (tmp_path / "in").exists() or (tmp_path / "in").stat().st_size <= 10


def test_a_server_that_hangs_up_before_the_length_it_stated_is_asked_again_and_named_in_words(input_server, tmp_path):
    """aiohttp words it 'Response payload is not completed: <ContentLengthError: 400, message=Not
    enough data to satisfy content length header.>', a 400 no server sent."""
    with pytest.raises(FetchError) as refusal:
        run(fetch_input(input_server.url("lying?declared=5000&sent=1200&close=1"), tmp_path / "in", TRUSTED))
    message = str(refusal.value)
    assert "the input's server closed the connection after 1,200 of the 5,000 bytes it stated" in message, message
    assert "400" not in message and input_server.fetches("lying?declared=5000&sent=1200&close=1") == 2


def test_an_answer_that_is_not_http_fails_the_download_saying_so_without_quoting_it(input_server, tmp_path):
    with pytest.raises(FetchError) as refusal:
        run(fetch_input(input_server.url("not-http"), tmp_path / "in", TRUSTED))
    message = str(refusal.value)
    assert "not valid HTTP (Bad status line)" in message, message
    assert "400" not in message and "secret-banner" not in message, message


def test_a_sender_slower_than_the_read_timeout_fails_the_download(input_server, tmp_path):
    input_server.add("trickle.bin", b"t" * 2000)
    policy = FetchPolicy(allow_private=True, read_timeout_s=0.2, attempts=1)
    with pytest.raises(FetchError, match="timed out"):
        run(fetch_input(input_server.url("slow/trickle.bin?seconds=20"), tmp_path / "in", policy))


def test_a_sender_under_the_rate_floor_fails_the_download_without_waiting_for_the_total_timeout(input_server, tmp_path):
    """A server sending 100 bytes a second is never silent for the read timeout: it held the task's
    worker for the whole total timeout (30 minutes by default)."""
    import time

    input_server.add("drip.bin", b"d" * 2000)
    policy = FetchPolicy(allow_private=True, min_bytes_per_s=1000, rate_window_s=0.5, attempts=1)
    start = time.monotonic()
    with pytest.raises(FetchError, match=r"sent \d+ bytes in \d+ s, slower than the floor of 1,000 bytes a second"):
        run(fetch_input(input_server.url("slow/drip.bin?seconds=20"), tmp_path / "in", policy))
    assert time.monotonic() - start < 5


def test_a_sender_over_the_rate_floor_downloads_whole(input_server, tmp_path):
    input_server.add("steady.bin", b"s" * 20_000)
    policy = FetchPolicy(allow_private=True, min_bytes_per_s=1000, rate_window_s=0.2, attempts=1)
    result = run(fetch_input(input_server.url("slow/steady.bin?seconds=1"), tmp_path / "in", policy))
    assert result.bytes == 20_000


def test_the_rate_floor_counts_from_the_first_byte_not_from_a_server_thinking_before_it(input_server, tmp_path):
    """A server silent for a while after its headers (under the read timeout), then sending its
    whole body at once: judged from the headers, it was refused at its first chunk."""
    input_server.add("thought.bin", b"t" * 2_000)
    policy = FetchPolicy(allow_private=True, min_bytes_per_s=4_000, rate_window_s=1.0, attempts=1)
    url = input_server.url("slow/thought.bin?seconds=0&first_byte_after=1.2")
    assert run(fetch_input(url, tmp_path / "in", policy)).bytes == 2_000


def test_a_download_that_stalls_is_asked_again(input_server, tmp_path):
    input_server.add("stalls.bin", b"s" * 2000)
    policy = FetchPolicy(allow_private=True, read_timeout_s=0.3, attempts=2, backoff_s=0.01)
    result = run(fetch_input(input_server.url("slow/stalls.bin?seconds=20&times=1"), tmp_path / "in", policy))
    assert result.bytes == 2000 and input_server.fetches("slow/stalls.bin?seconds=20&times=1") == 2


def test_a_host_name_that_does_not_exist_fails_at_once_without_retries(tmp_path):
    import time

    policy = FetchPolicy(allow_private=True, attempts=3, backoff_s=2.0)  # retries would take 6 s
    start = time.monotonic()
    with pytest.raises(FetchError, match="does not exist"):
        asyncio.run(fetch_input("http://no-such-host.invalid/a.png", tmp_path / "x", policy))
    assert time.monotonic() - start < 2.0


def test_a_redirect_to_a_host_that_does_not_exist_names_that_host(input_server, tmp_path):
    url = input_server.url("redirect?to=" + quote("http://no-such-host.invalid/a.png", safe=""))
    with pytest.raises(FetchError, match="host no-such-host.invalid does not exist"):
        run(fetch_input(url, tmp_path / "in", TRUSTED))


def test_the_total_timeout_spans_every_redirect_hop(input_server, tmp_path):
    """Each hop of a slow chain stayed under download_total_timeout_s, so a chain of them ran on
    for as long as the hops allowed: the timeout was set per hop."""
    input_server.add("late.bin", b"l" * 2000)
    url = input_server.url("slow/late.bin?seconds=0.8")
    for _ in range(2):
        url = input_server.url("redirect?delay=0.5&to=" + quote(url, safe=""))
    policy = FetchPolicy(allow_private=True, total_timeout_s=1.2, attempts=1)
    with pytest.raises(FetchError, match="download timed out"):
        run(fetch_input(url, tmp_path / "in", policy))


def test_a_download_cancelled_from_outside_ends_at_once_as_cancelled_not_as_timed_out(input_server, tmp_path):
    """A task's DELETE cancels its download; the total timeout's asyncio.timeout turns only its own
    expiry into "download timed out", so the cancel goes on as one, at once."""
    input_server.add("long.bin", b"l" * 2000)
    url = input_server.url("slow/long.bin?seconds=20")

    async def cancelled_after_start():
        download = asyncio.ensure_future(fetch_input(url, tmp_path / "in", FetchPolicy(allow_private=True)))
        await asyncio.sleep(0.3)
        download.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(download, timeout=2)

    run(cancelled_after_start())
