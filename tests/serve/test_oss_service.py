"""The service with OSS on both sides: an oss:// input in, a signed OSS URL out."""

import re
import time

import cv2
import numpy as np
import pytest
import requests

from tests.helpers import (eventually, frozen, kill_state_actor, make_clip, png_bytes, read_task, replica_pids,
                           segments_done, sigkill, task_ended, video_progress, wait_for_task)
from tests.oss_server import OssServer


@pytest.fixture(scope="module")
def oss_app(service):
    from ray import serve

    from tmlsr_ray.app import build_app
    from tmlsr_ray.serve.state import STATE_NAMESPACE

    server = OssServer(access_key_id="svc-ak", secret="svc-sk")
    settings = {"weights_dir": str(service.weights_dir), "data_dir": str(service.data_dir / "oss-app"),
                "upscaler_num_cpus": 0, "seedvr2_replicas": 0, "storage": "oss", "oss_endpoint": server.endpoint,
                "oss_access_key_id": "svc-ak", "oss_access_key_secret": "svc-sk", "oss_bucket": "outputs",
                "oss_prefix": "results", "state_actor_name": "tmlsr_state_oss", "allow_private_urls": True,
                "video_segment_s": 1.0, "video_preset": "ultrafast", "torch_threads": 2,
                "heartbeat_interval_s": 0.5, "heartbeat_timeout_s": 8, "storage_backoff_s": 0.1}
    serve.run(build_app(settings), name="oss-app", route_prefix="/oss-app")
    yield service.url("/oss-app"), server
    serve.delete("oss-app")
    kill_state_actor("tmlsr_state_oss", STATE_NAMESPACE)
    server.close()


def test_an_oss_input_is_upscaled_into_the_oss_output_bucket(service, oss_app):
    base, server = oss_app
    server.state.objects[("inputs", "photos/cat.png")] = (png_bytes(20, 12), "image/png")
    task_id = requests.post(base + "/tasks", json={"url": "oss://inputs/photos/cat.png", "type": "image",
                                                   "model": "tiny-x4.pth"}, timeout=30).json()["task_id"]
    task = wait_for_task(base, task_id)
    assert task["status"] == "completed", task["error"]
    stored = [k for b, k in server.state.objects if b == "outputs"]
    assert any(re.fullmatch(rf"results/\d{{4}}/\d\d/\d\d/{task_id}/output\.png", k) for k in stored), stored
    response = requests.get(task["output"]["url"], timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED).shape == (48, 80, 3)


def test_oss_answering_503_is_asked_again_and_then_fails_the_task_readably_leaving_no_object(service, oss_app):
    base, server = oss_app
    server.state.objects[("inputs", "photos/dog.png")] = (png_bytes(20, 12), "image/png")
    body = {"url": "oss://inputs/photos/dog.png", "type": "image", "model": "tiny-x4.pth"}
    try:
        server.fail_next(2)  # the output's PUT: two 503s, then stored
        retried = wait_for_task(base, requests.post(base + "/tasks", json=body, timeout=30).json()["task_id"])
        assert retried["status"] == "completed", retried["error"]
        server.fail_next(4)  # every try of the next output
        task_id = requests.post(base + "/tasks", json=body, timeout=30).json()["task_id"]
        task = wait_for_task(base, task_id)
    finally:
        server.state.faults.clear()
    assert task["status"] == "failed"
    assert task["error"].startswith("upload failed after 4 attempts: OSS answered HTTP 503 ServiceUnavailable")
    assert not [k for b, k in server.state.objects if b == "outputs" and task_id in k]


def test_an_output_whose_delete_failed_is_deleted_on_the_next_retention_round(service, oss_app):
    """Every output of a round was marked expired before its delete was sent: one 503 left them
    all in the bucket, their tasks saying expired."""
    import ray

    from tmlsr_ray.serve.state import STATE_NAMESPACE

    base, server = oss_app
    server.state.objects[("inputs", "photos/old.png")] = (png_bytes(8, 8), "image/png")
    task_id = requests.post(base + "/tasks", json={"url": "oss://inputs/photos/old.png", "type": "image",
                                                   "model": "tiny-x4.pth"}, timeout=30).json()["task_id"]
    assert wait_for_task(base, task_id)["status"] == "completed"
    state = ray.get_actor("tmlsr_state_oss", namespace=STATE_NAMESPACE)
    later = time.time() + 8 * 86400  # past the 7 days outputs are kept

    def stored():
        return [key for bucket, key in server.state.objects if bucket == "outputs" and task_id in key]

    try:
        server.fail_next(100, request="DELETE")  # every delete of the round, other tests' outputs too
        ray.get(state.apply_retention.remote(now=later))
    finally:
        server.state.faults.clear()
    kept = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()["output"]
    assert stored() and not kept["expired"] and kept["url"]  # still there, still handed out
    ray.get(state.apply_retention.remote(now=later))
    gone = requests.get(f"{base}/tasks/{task_id}", timeout=10).json()["output"]
    assert not stored() and gone["expired"] and gone["url"] is None


def test_a_missing_oss_input_fails_the_task_readably(service, oss_app):
    base, _ = oss_app
    task_id = requests.post(base + "/tasks", json={"url": "oss://inputs/nope.png", "type": "image",
                                                   "model": "tiny-x4.pth"}, timeout=30).json()["task_id"]
    task = wait_for_task(base, task_id)
    assert task["status"] == "failed" and "OSS object not found: oss://inputs/nope.png" in task["error"]


def test_a_video_resumes_from_its_pieces_in_oss_on_a_runner_that_has_none_of_its_files(
        service, oss_app, input_server, tmp_path):
    import shutil

    base, server = oss_app
    # 6 one-second segments; the runner is killed once one is done, with the model's replica frozen so
    # that none finishes meanwhile however fast the machine: the ones left are still left.
    url = input_server.add("oss-resume.mp4", make_clip(tmp_path / "v.mp4", frames=72, size=(160, 120)).read_bytes())
    runners, upscalers = replica_pids("TaskRunner", app="oss-app"), replica_pids("Upscaler", app="oss-app")
    task_id = requests.post(base + "/tasks", json={"url": url, "model": "slow-x4.pth"}, timeout=30).json()["task_id"]
    wait_for_task(base, task_id, timeout=180, until=lambda t: segments_done(t) >= 1 or task_ended(t))
    with frozen(upscalers):
        task = read_task(base, task_id)
        total = video_progress(task).get("segments_total", 0)
        assert task["status"] == "processing" and 1 <= segments_done(task) < total, ("no cut part way", task)
        sigkill(runners)
    # As if the next attempt ran on another node: nothing of the task is on this disk any more.
    shutil.rmtree(service.data_dir / "oss-app" / "work" / task_id, ignore_errors=True)
    task = wait_for_task(base, task_id, timeout=240)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["frames"] == 72 and meta["segments"]["total"] == total >= 6
    assert 1 <= meta["segments"]["reused"] < total, meta["segments"]
    # Each piece's record stored once over both runs: the resumed one made only the missing pieces (a
    # runner that remade them all still counted the found ones as reused).
    records = [key for method, _, key, _ in list(server.state.requests)
               if method == "PUT" and key.startswith(f"results/pieces/{task_id}/") and key.endswith(".json")]
    assert len(records) == len(set(records)) == total, records
    eventually(lambda: not [k for b, k in list(server.state.objects) if k.startswith(f"results/pieces/{task_id}/")],
               what="the task's pieces removed from OSS")
