"""OSS with the real oss2 client against a local OSS-compatible server that checks signatures."""

import asyncio
from dataclasses import replace

import oss2
import pytest
import requests

from tests.oss_server import OssServer
from tmlsr_ray.errors import FetchError
from tmlsr_ray.pipeline.fetch import fetch_input
from tmlsr_ray.urls import FetchPolicy
from tmlsr_ray.storage.oss import OssConfig, OssStorage, parse_oss_url


@pytest.fixture(scope="module")
def oss_server():
    server = OssServer(access_key_id="ak", secret="sk")
    yield server
    server.close()


@pytest.fixture
def config(oss_server):
    return OssConfig(endpoint=oss_server.endpoint, access_key_id="ak", access_key_secret="sk",
                     bucket="out", prefix="tmlsr")


def test_a_small_output_is_uploaded_with_its_content_type_and_a_working_signed_url(config, oss_server, tmp_path):
    (tmp_path / "o.png").write_bytes(b"\x89PNG small")
    url = OssStorage(config, tmp_path / "ckpt").put("2026/01/02/t1/output.png", tmp_path / "o.png", "image/png")
    assert oss_server.state.objects[("out", "tmlsr/2026/01/02/t1/output.png")] == (b"\x89PNG small", "image/png")
    assert "Signature=" in url and "Expires=" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"\x89PNG small"


def test_large_outputs_go_up_in_parts(config, oss_server, tmp_path):
    data = bytes(range(256)) * 2000  # 512 000 bytes
    (tmp_path / "big.mp4").write_bytes(data)
    config = replace(config, multipart_threshold_bytes=200_000, part_size_bytes=200_000)
    oss_server.state.requests.clear()
    OssStorage(config, tmp_path / "ckpt").put("d/t2/output.mp4", tmp_path / "big.mp4", "video/mp4")
    assert oss_server.state.objects[("out", "tmlsr/d/t2/output.mp4")] == (data, "video/mp4")
    parts = [r for r in oss_server.state.requests if "partNumber" in r[3]]
    assert len(parts) == 3 and any("uploads" in r[3] for r in oss_server.state.requests)


def test_a_wrong_secret_is_refused_by_the_signature_check(config, tmp_path):
    (tmp_path / "o.png").write_bytes(b"x")
    storage = OssStorage(replace(config, access_key_secret="wrong"), tmp_path / "ckpt")
    with pytest.raises(oss2.exceptions.OssError) as caught:
        storage.put("k/output.png", tmp_path / "o.png", "image/png")
    assert caught.value.status == 403


def test_a_tampered_or_expired_signed_url_is_refused(config, tmp_path):
    (tmp_path / "o.png").write_bytes(b"x")
    url = OssStorage(config, tmp_path / "ckpt").put("k/o2.png", tmp_path / "o.png", "image/png")
    assert requests.get(url.replace("o2.png", "o3.png"), timeout=10).status_code == 403
    expired = OssStorage(replace(config, url_expires_s=-10), tmp_path / "ckpt").put(
        "k/o4.png", tmp_path / "o.png", "image/png")
    assert requests.get(expired, timeout=10).status_code == 403


def test_public_buckets_get_plain_urls(config, tmp_path):
    (tmp_path / "o.png").write_bytes(b"x")
    url = OssStorage(replace(config, public_urls=True), tmp_path / "ckpt").put("k/p.png", tmp_path / "o.png", "image/png")
    assert url == f"{config.endpoint}/out/tmlsr/k/p.png"


def test_oss_inputs_are_read_with_the_configured_credentials(config, oss_server, tmp_path):
    oss_server.state.objects[("inputs", "clips/a b.png")] = (b"input-bytes", "image/png")
    result = asyncio.run(fetch_input("oss://inputs/clips/a%20b.png", tmp_path / "in", FetchPolicy(), config))
    assert result.bytes == 11 and (tmp_path / "in").read_bytes() == b"input-bytes"


def test_oss_input_errors_are_readable(config, oss_server, tmp_path):
    with pytest.raises(FetchError, match="OSS object not found: oss://inputs/missing.png"):
        asyncio.run(fetch_input("oss://inputs/missing.png", tmp_path / "in", FetchPolicy(), config))
    oss_server.state.objects[("inputs", "x.png")] = (b"x", "image/png")
    with pytest.raises(FetchError, match="OSS refused the download .* HTTP 403"):
        asyncio.run(fetch_input("oss://inputs/x.png", tmp_path / "in", FetchPolicy(),
                                replace(config, access_key_secret="wrong")))
    with pytest.raises(FetchError, match="need OSS credentials"):
        asyncio.run(fetch_input("oss://inputs/x.png", tmp_path / "in", FetchPolicy(), None))


def test_oss_inputs_respect_the_size_limit(config, oss_server, tmp_path):
    oss_server.state.objects[("inputs", "big.bin")] = (b"b" * 5000, "application/octet-stream")
    with pytest.raises(FetchError, match="over the limit"):
        asyncio.run(fetch_input("oss://inputs/big.bin", tmp_path / "in", FetchPolicy(max_bytes=1000), config))


def test_sts_tokens_are_sent_and_checked(tmp_path):
    server = OssServer(access_key_id="tmp-ak", secret="tmp-sk", security_token="sts-token")
    try:
        (tmp_path / "o.png").write_bytes(b"sts")
        good = OssConfig(endpoint=server.endpoint, access_key_id="tmp-ak", access_key_secret="tmp-sk",
                         security_token="sts-token", bucket="out")
        url = OssStorage(good, tmp_path / "ckpt").put("k/o.png", tmp_path / "o.png", "image/png")
        assert requests.get(url, timeout=10).content == b"sts"
        with pytest.raises(oss2.exceptions.OssError):
            OssStorage(replace(good, security_token=None), tmp_path / "c2").put("k/p.png", tmp_path / "o.png", "image/png")
    finally:
        server.close()


@pytest.mark.parametrize(
    "url,expected",
    [("oss://bucket-1/a/b.mp4", ("bucket-1", "a/b.mp4", None)),
     ("https://my-bucket.oss-cn-hangzhou.aliyuncs.com/in/v.mp4",
      ("my-bucket", "in/v.mp4", "https://oss-cn-hangzhou.aliyuncs.com")),
     ("https://my-bucket.oss-cn-beijing-internal.aliyuncs.com/x.png",
      ("my-bucket", "x.png", "https://oss-cn-beijing-internal.aliyuncs.com")),
     ("https://example.com/x.png", None)],
)
def test_oss_urls_are_recognised(config, url, expected):
    assert parse_oss_url(url, config) == expected


def test_pieces_in_oss_are_found_by_a_later_attempt_on_any_node_and_removed_at_the_end(config, oss_server, tmp_path):
    from tmlsr_ray.piece import Piece
    from tmlsr_ray.storage.oss import OssPieceStore

    bucket = config.bucket_client(config.bucket)
    store = OssPieceStore(bucket, "results/pieces/task1/plan1/", tmp_path / "node-a")
    store.save(b"piece zero", Piece(0, 0, 25, "libx264"))
    store.save(b"piece two", Piece(2, 5000, 24, "libx264"))
    bucket.put_object("results/pieces/task1/plan1/00003.mp4", b"half a piece: no record yet")
    elsewhere = OssPieceStore(bucket, "results/pieces/task1/plan1/", tmp_path / "node-b")
    finished = elsewhere.finished()
    assert finished == {0: Piece(0, 0, 25, "libx264"), 2: Piece(2, 5000, 24, "libx264")}
    assert [path.read_bytes() for path, _ in elsewhere.in_order(finished)] == [b"piece zero", b"piece two"]
    OssPieceStore(bucket, "results/pieces/task1/", None).remove()
    assert not [k for b, k in oss_server.state.objects if k.startswith("results/pieces/task1/")]
