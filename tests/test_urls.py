"""The address policy and size cap shared by downloads, OSS and webhooks."""

import pytest

from tmlsr_ray.errors import FetchError
from tmlsr_ray.urls import CappedFile, FetchPolicy, address_refusal, allowlisted, check_url, without_credentials


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "224.0.0.1",
     "100.64.0.1", "::1", "::", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
     "fec0::1",  # site-local: the private scope before unique local addresses (RFC 3879)
     "192.0.0.192"],  # IETF protocol assignments, counted global by Python before 3.11.10: OCI Classic metadata
)
def test_non_public_addresses_are_refused(address):
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(address) is None


@pytest.mark.parametrize("url,trusted", [
    ("http://media.local:8080/videos/a.mp4", True),
    ("http://media.local:8080/videos", True),
    ("http://MEDIA.local:8080/videos/sub/b.mp4", True),
    ("http://media.local:8080@169.254.169.254/videos/a.mp4", False),   # userinfo trick: host is the IP
    ("http://user:pw@media.local:8080/videos/a.mp4", False),            # credentials: never trusted
    ("http://media.local:8080/videos-other/a.mp4", False),              # not under the path
    ("http://media.local:8081/videos/a.mp4", False),                    # other port
    ("https://media.local:8080/videos/a.mp4", False),                   # other scheme
    ("http://media.local.evil.com:8080/videos/a.mp4", False),
    ("http://media.local:8080/videos/../admin", False),                 # dot segments leave the prefix
    ("http://media.local:8080/videos/%2e%2E/admin", False),
    ("http://media.local:8080/videos/..%2fadmin", False),
    ("http://media.local:8080/videos/a\\..\\..\\admin", False),
    ("http://media.local:8080/videos/..;/admin", False),                # Tomcat and Jetty read ..; as ..
    ("http://media.local:8080/videos/a;v=1.mp4", True),                 # a path parameter is no dot segment
])
def test_allowlisted_prefixes_compare_parsed_urls_not_strings(url, trusted):
    assert allowlisted(url, ("http://media.local:8080/videos/",)) is trusted


def test_a_capped_file_refuses_a_declared_length_over_the_cap_before_writing(tmp_path):
    with pytest.raises(FetchError, match="over the limit of 10"):
        CappedFile(tmp_path / "a", 10, declared=11)
    assert not (tmp_path / "a").exists()


def test_a_capped_file_stops_at_the_cap_whatever_was_declared(tmp_path):
    with pytest.raises(FetchError, match="over the limit of 10 bytes"):
        with CappedFile(tmp_path / "sub" / "b", 10, declared=4) as out:
            out.write(b"12345")
            out.write(b"678901")
    assert (tmp_path / "sub" / "b").read_bytes() == b"12345"


def test_check_url_refuses_private_addresses_unless_the_policy_allows_them():
    with pytest.raises(FetchError, match="loopback"):
        check_url("http://127.0.0.1/x", FetchPolicy())
    check_url("http://127.0.0.1/x", FetchPolicy(allow_private=True))
    check_url("http://127.0.0.1:9/x", FetchPolicy(allowlist=("http://127.0.0.1:9/",)))


@pytest.mark.parametrize("url, shown", [
    ("http://user:pass@host/a.png", "http://user:***@host/a.png"),
    ("https://TOKEN@host:8443/a.png?x=1", "https://***@host:8443/a.png?x=1"),
    ("http://user:p@ss@host/", "http://user:***@host/"),  # the last @ ends the user info
    ("http://:pass@host/", "http://***@host/"),
    ("http://[::1]:8/a.png", "http://[::1]:8/a.png"),
    ("http://host/path@not-userinfo?q=a@b#c@d", "http://host/path@not-userinfo?q=a@b#c@d"),
    ("oss://bucket/key@1.png", "oss://bucket/key@1.png"),
    ("//TOKEN@host/a.png", "//***@host/a.png"),  # a Location's network-path reference
    ("/path//user:pass@x", "/path//user:pass@x"),
])
def test_a_url_is_shown_without_the_credentials_in_its_user_info(url, shown):
    assert without_credentials(url) == shown
