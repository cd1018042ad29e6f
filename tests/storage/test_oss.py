"""OSS with the real oss2 client against a local OSS-compatible server that checks signatures."""

import asyncio
from dataclasses import replace

import pytest
import requests

from tests.oss_server import OssServer
from tmlsr_ray.errors import FetchError, StorageError
from tmlsr_ray.pipeline.fetch import fetch_input
from tmlsr_ray.retry import Backoff
from tmlsr_ray.storage.base import store_output
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


def store(storage: OssStorage, key: str, source, backoff: Backoff = Backoff(4, 0.01)) -> str:
    return asyncio.run(store_output(storage, key, source, "video/mp4", backoff))


@pytest.fixture(autouse=True)
def no_faults_left(oss_server):
    yield
    oss_server.state.faults.clear()


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


def test_a_wrong_secret_is_refused_by_the_signature_check_and_not_asked_again(config, oss_server, tmp_path):
    (tmp_path / "o.png").write_bytes(b"x")
    storage = OssStorage(replace(config, access_key_secret="wrong"), tmp_path / "ckpt")
    oss_server.state.requests.clear()
    with pytest.raises(StorageError, match="OSS refused the upload: OSS answered HTTP 403 SignatureDoesNotMatch"):
        store(storage, "k/output.png", tmp_path / "o.png")
    assert [r[0] for r in oss_server.state.requests].count("PUT") == 1


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
        with pytest.raises(StorageError, match="HTTP 403"):
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


def test_a_signed_or_processed_aliyun_url_is_fetched_as_given_not_read_with_the_services_key(config):
    """Its signature may be another account's, and x-oss-process or versionId would be lost."""
    for query in ("OSSAccessKeyId=other&Expires=9999999999&Signature=abc", "x-oss-process=image/resize,w_100"):
        assert parse_oss_url(f"https://my-bucket.oss-cn-hangzhou.aliyuncs.com/in/a.png?{query}", config) is None


def test_an_oss_url_with_a_query_is_refused_rather_than_read_without_it(config):
    with pytest.raises(FetchError, match="takes no query"):
        parse_oss_url("oss://inputs/a.png?versionId=1", config)


def test_an_empty_oss_object_is_said_to_be_empty(config, oss_server, tmp_path):
    oss_server.state.objects[("inputs", "empty.png")] = (b"", "image/png")
    with pytest.raises(FetchError, match="OSS object oss://inputs/empty.png is empty"):
        asyncio.run(fetch_input("oss://inputs/empty.png", tmp_path / "in", FetchPolicy(), config))


@pytest.mark.parametrize("url", ["oss://inputs/", "https://my-bucket.oss-cn-hangzhou.aliyuncs.com/",
                                 "https://my-bucket.oss-cn-hangzhou.aliyuncs.com"])
def test_an_oss_url_without_a_key_is_refused_readably(config, url):
    with pytest.raises(FetchError, match="needs a bucket and a key"):
        parse_oss_url(url, config)


@pytest.mark.parametrize("bucket", ["UPPER", "user@inputs", "inputs:99", "ab", "-lead"])
def test_a_bucket_name_oss_cannot_have_is_refused_readably(config, bucket):
    with pytest.raises(FetchError, match="is not an OSS bucket name"):
        parse_oss_url(f"oss://{bucket}/x.png", config)


@pytest.mark.parametrize("url, named", [
    ("oss://user:s3cret@inputs", "got oss://user:***@inputs"),
    ("oss://user:s3cret@inputs/x.png", "'user:***@inputs' is not an OSS bucket name"),
    ("https://s3cret@my-bucket.oss-cn-hangzhou.aliyuncs.com/", "got https://***@my-bucket.oss-cn-hangzhou.aliyuncs.com/")])
def test_an_oss_url_refused_is_named_without_its_credentials(config, url, named):
    """The refusal is the task's error, which GET /tasks, the dashboard and webhooks show: it named
    the URL with the password or token its params hide."""
    with pytest.raises(FetchError) as refused:
        parse_oss_url(url, config)
    assert named in str(refused.value) and "s3cret" not in str(refused.value)


def test_an_oss_input_answered_503_or_late_is_asked_again_as_an_http_input_is(config, oss_server, tmp_path):
    oss_server.state.objects[("inputs", "flaky.png")] = (b"input-bytes", "image/png")
    oss_server.fail_next(1, request="GET")
    oss_server.stall_next(1, 1.0, request="GET")
    policy = FetchPolicy(backoff_s=0.01)
    result = asyncio.run(fetch_input("oss://inputs/flaky.png", tmp_path / "in", policy,
                                     replace(config, timeout_s=0.3)))
    assert result.bytes == 11
    oss_server.stall_next(policy.attempts, 1.0, request="GET")
    with pytest.raises(FetchError, match=r"failed after \d+ attempts: OSS did not answer within 0\.3 s"):
        asyncio.run(fetch_input("oss://inputs/flaky.png", tmp_path / "in", policy, replace(config, timeout_s=0.3)))


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


# -- faults -----------------------------------------------------------------------------------

def multipart(config):
    return replace(config, multipart_threshold_bytes=200_000, part_size_bytes=200_000)


def requests_made(oss_server, method: str, param: str) -> int:
    return sum(1 for r in oss_server.state.requests if r[0] == method and param in r[3])


def test_an_upload_answered_503_is_asked_again_until_it_is_stored(config, oss_server, tmp_path):
    (tmp_path / "o.mp4").write_bytes(b"small video")
    oss_server.fail_next(2)
    store(OssStorage(config, tmp_path / "ckpt"), "k/retried.mp4", tmp_path / "o.mp4")
    assert oss_server.state.objects[("out", "tmlsr/k/retried.mp4")] == (b"small video", "video/mp4")


def test_a_multipart_upload_whose_completion_failed_goes_on_with_the_parts_it_sent(config, oss_server, tmp_path):
    data = bytes(range(256)) * 2000  # three parts
    (tmp_path / "big.mp4").write_bytes(data)
    oss_server.state.requests.clear()
    oss_server.fail_next(1, "POST?uploadId")
    store(OssStorage(multipart(config), tmp_path / "ckpt"), "k/resumed.mp4", tmp_path / "big.mp4")
    assert oss_server.state.objects[("out", "tmlsr/k/resumed.mp4")] == (data, "video/mp4")
    assert requests_made(oss_server, "PUT", "partNumber") == 3 and requests_made(oss_server, "POST", "uploadId") == 2


def test_an_upload_failing_every_try_fails_readably_and_leaves_no_upload_behind(config, oss_server, tmp_path):
    (tmp_path / "big.mp4").write_bytes(bytes(range(256)) * 2000)
    oss_server.fail_next(4, "PUT?partNumber")
    with pytest.raises(StorageError, match=r"^upload failed after 4 attempts: OSS answered HTTP 503 "
                                           r"ServiceUnavailable: Please reduce your request rate"):
        store(OssStorage(multipart(config), tmp_path / "ckpt"), "k/lost.mp4", tmp_path / "big.mp4")
    assert ("out", "tmlsr/k/lost.mp4") not in oss_server.state.objects
    assert not [k for _, k, _ in oss_server.state.upload_targets.values() if k == "tmlsr/k/lost.mp4"]
    assert not [p for p in (tmp_path / "ckpt").rglob("*") if p.is_file()], "the resumable upload's record is left"
    assert (tmp_path / "big.mp4").exists(), "the output itself is kept for the task's cleanup"


def test_an_upload_without_an_answer_in_time_is_asked_again(config, oss_server, tmp_path):
    (tmp_path / "o.mp4").write_bytes(b"late")
    oss_server.stall_next(1, 1.0)
    store(OssStorage(replace(config, timeout_s=0.3), tmp_path / "ckpt"), "k/late.mp4", tmp_path / "o.mp4")
    assert oss_server.state.objects[("out", "tmlsr/k/late.mp4")] == (b"late", "video/mp4")


def test_an_object_a_timed_out_request_wrote_does_not_stay_when_the_upload_fails(config, oss_server, tmp_path):
    (tmp_path / "o.mp4").write_bytes(b"late")
    oss_server.stall_next(1, 0.6)  # answered after the client gave up, but stored
    oss_server.fail_next(2)
    # 0.1 s was short enough for a 503 on a loaded machine to come back as a timeout
    storage = OssStorage(replace(config, timeout_s=0.25), tmp_path / "ckpt")
    with pytest.raises(StorageError, match="after 3 attempts: OSS answered HTTP 503"):
        store(storage, "k/ghost.mp4", tmp_path / "o.mp4", Backoff(3, 0.6))
    assert ("out", "tmlsr/k/ghost.mp4") not in oss_server.state.objects


def test_the_timeout_error_says_how_long_oss_was_waited_for(config, oss_server, tmp_path):
    (tmp_path / "o.mp4").write_bytes(b"late")
    oss_server.stall_next(2, 0.5)
    with pytest.raises(StorageError, match=r"after 2 attempts: OSS did not answer within 0\.2 s"):
        store(OssStorage(replace(config, timeout_s=0.2), tmp_path / "ckpt"), "k/slow.mp4", tmp_path / "o.mp4",
              Backoff(2, 0.01))


def test_an_upload_canceled_while_in_flight_leaves_no_object(config, oss_server, tmp_path):
    """The put goes on in its thread after the cancel: the store is cleaned once it has ended,
    not before (the object landed after the task said canceled, and stayed)."""
    (tmp_path / "o.mp4").write_bytes(b"canceled")
    oss_server.stall_next(1, 1.0)
    storage = OssStorage(config, tmp_path / "ckpt")

    async def cancel_midway():
        upload = asyncio.ensure_future(store_output(storage, "k/canceled.mp4", tmp_path / "o.mp4", "video/mp4",
                                                    Backoff(2, 0.01)))
        await asyncio.sleep(0.3)
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload

    asyncio.run(cancel_midway())
    assert ("out", "tmlsr/k/canceled.mp4") not in oss_server.state.objects


def test_an_output_is_deleted_where_it_was_stored_after_the_prefix_and_bucket_changed(config, oss_server, tmp_path):
    """Retention deleted at the current prefix: every output stored before a change stayed."""
    (tmp_path / "o.png").write_bytes(b"kept?")
    before = OssStorage(config, tmp_path / "ckpt")
    before.put("2026/01/02/t1/output.png", tmp_path / "o.png", "image/png")
    location = before.location("2026/01/02/t1/output.png")
    assert location == "oss://out/tmlsr/2026/01/02/t1/output.png"
    OssStorage(replace(config, prefix="studio/out", bucket="elsewhere"), tmp_path / "ckpt").delete(location)
    assert ("out", "tmlsr/2026/01/02/t1/output.png") not in oss_server.state.objects


def test_a_bare_key_from_an_older_record_is_deleted_below_the_current_prefix(config, oss_server, tmp_path):
    oss_server.state.objects[("out", "tmlsr/2025/12/31/t0/output.png")] = (b"old", "image/png")
    OssStorage(config, tmp_path / "ckpt").delete("2025/12/31/t0/output.png")
    assert ("out", "tmlsr/2025/12/31/t0/output.png") not in oss_server.state.objects


def test_deleting_an_output_also_aborts_an_unfinished_upload_of_its_name(config, oss_server, tmp_path):
    """A run cut off in the middle of its parts: no record names them and OSS bills them."""
    storage = OssStorage(config, tmp_path / "ckpt")
    name = "tmlsr/2026/01/03/t2/output.mp4"
    bucket = config.bucket_client("out")
    upload_id = bucket.init_multipart_upload(name).upload_id
    bucket.upload_part(name, upload_id, 1, b"part one")
    storage.delete(storage.location("2026/01/03/t2/output.mp4"))
    assert upload_id not in oss_server.state.uploads
    assert ("out", name) not in oss_server.state.objects
