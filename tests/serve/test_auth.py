"""The optional API token: every data route needs it when one is configured."""

import pytest
import requests

from tmlsr_ray.serve.ingress import bearer_token_ok


@pytest.mark.parametrize(
    "header,expected,ok",
    [(None, None, True), ("Bearer s3cret", "s3cret", True), ("bearer s3cret", "s3cret", True),
     (None, "s3cret", False), ("Bearer wrong", "s3cret", False), ("s3cret", "s3cret", False),
     ("Basic s3cret", "s3cret", False), ("Bearer ", "s3cret", False)],
)
def test_bearer_token_check(header, expected, ok):
    assert bearer_token_ok(header, expected) is ok


@pytest.fixture(scope="module")
def secured(service, tmp_path_factory):
    """A second instance of the application, with a token and a tiny output limit, beside the open one."""
    from ray import serve

    from tmlsr_ray.app import build_app

    settings = {"weights_dir": str(service.weights_dir), "data_dir": str(service.data_dir),
                "allow_private_urls": True, "api_token": "s3cret", "upscaler_num_cpus": 0,
                "max_output_bytes": 1000}
    serve.run(build_app(settings), name="secured", route_prefix="/secured")
    yield service.url("/secured")
    serve.delete("secured")


@pytest.mark.parametrize("method,path", [("get", "/monitor/stats"), ("get", "/tasks/" + "0" * 32),
                                         ("delete", "/tasks/" + "0" * 32), ("post", "/tasks"),
                                         ("get", "/files/x.png")])
def test_data_routes_answer_401_without_the_right_token(secured, method, path):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = requests.request(method, secured + path, json={"url": "http://h/a.png"}, headers=headers, timeout=10)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_health_is_open_and_the_token_admits(secured):
    assert requests.get(secured + "/health", timeout=10).status_code == 200
    response = requests.get(secured + "/monitor/stats", headers={"Authorization": "Bearer s3cret"}, timeout=10)
    assert response.status_code == 200 and "system" in response.json()


def test_an_output_over_the_byte_limit_fails_before_upload(service, secured, input_server):
    from tests.serve.test_api import png_bytes

    auth = {"Authorization": "Bearer s3cret"}
    url = input_server.add("noisy.png", png_bytes(40, 40, seed=5))
    task_id = requests.post(secured + "/tasks", json={"url": url, "type": "image", "model": "tiny-x4.pth"},
                            headers=auth, timeout=30).json()["task_id"]
    task = service.wait(task_id)
    assert task["status"] == "failed" and "over the limit of 1,000" in task["error"]
    assert task["stages"][2]["status"] == "skipped"
