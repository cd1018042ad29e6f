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
    """A second instance of the application, with a token, beside the open one."""
    from ray import serve

    from tmlsr_ray.app import build_app

    settings = {"weights_dir": str(service.weights_dir), "data_dir": str(service.data_dir),
                "allow_private_urls": True, "api_token": "s3cret", "upscaler_num_cpus": 0}
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
