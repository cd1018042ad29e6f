"""Malformed requests are refused at the door with a 4xx and a readable message, never a 500,
and the service keeps serving afterwards."""

from __future__ import annotations

import json

import pytest
import requests

from tests.helpers import png_bytes

GOOD_URL = "http://example.com/a.png"


def raw(text: str) -> dict:
    return {"data": text, "headers": {"Content-Type": "application/json"}}


def body(**fields) -> dict:
    return raw(json.dumps({"url": GOOD_URL, **fields}))


def with_number(field: str, literal: str) -> dict:
    """A body whose number is written as is: NaN and Infinity are JSON extensions json.dumps would quote."""
    return raw('{"url": "%s", "%s": %s}' % (GOOD_URL, field, literal))


MALFORMED = {
    "empty object": raw("{}"),
    "url a number": raw('{"url": 123}'),
    "url empty": body(url=""),
    "url ftp": body(url="ftp://example.com/a.png"),
    "url space in host": body(url="http://exa mple.com/a.png"),
    "url 100k long": body(url="http://example.com/" + "a" * 30_000),
    "url control character": body(url="http://example.com/a\x00.png"),
    "url without host": body(url="http:///a.png"),
    "url bad port": body(url="http://example.com:99999/a.png"),
    "url a list": body(url=[GOOD_URL]),
    "type unknown": body(type="audio"),
    "type a number": body(type=5),
    "model a number": body(model=5),
    "model 10k long": body(model="x" * 10_000),
    "model a path": body(model="../../etc/passwd"),
    "outscale NaN": with_number("outscale", "NaN"),
    "outscale Infinity": with_number("outscale", "Infinity"),
    "outscale -Infinity": with_number("outscale", "-Infinity"),
    "outscale 1e308": with_number("outscale", "1e308"),
    "outscale negative": body(outscale=-1),
    "outscale zero": body(outscale=0),
    "outscale text": body(outscale="two"),
    "magnification NaN": with_number("output_magnification", "NaN"),
    "magnification 1e9": body(output_magnification=1e9),
    "dims a billion squared": body(output_dims=[1_000_000_000, 1_000_000_000]),
    "dims over the pixel limit": body(output_dims=[60_000, 60_000]),
    "dims zero": body(output_dims=[0, 10]),
    "dims one number": body(output_dims=[10]),
    "dims a string": body(output_dims="10x10"),
    "dims nested": body(output_dims=[[1], [2]]),
    "dims NaN": raw('{"url": "%s", "output_dims": [NaN, 2]}' % GOOD_URL),
    "resolution zero": body(resolution=0),
    "resolution huge": body(resolution=10**12),
    "seed negative": body(seed=-1),
    "seed 2^70": body(seed=2**70),
    "callback javascript": body(callback_url="javascript:alert(1)"),
    "callback_progress text": body(callback_progress="maybe"),
    "hdr unknown": body(hdr="bright"),
    "unknown field": body(colour="red"),
    "not json": raw("not json"),
    "a JSON list": raw("[]"),
    "a JSON string": raw('"http://example.com/a.png"'),
    "empty body": raw(""),
    "deeply nested": raw('{"url": ' + "[" * 20_000 + "]" * 20_000 + "}"),
    "text/plain body": {"data": json.dumps({"url": GOOD_URL}), "headers": {"Content-Type": "text/plain"}},
    "oversized body": body(model="x" * 100_000),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_request_gets_a_4xx_with_a_message(service, case):
    response = requests.post(service.url("/tasks"), timeout=30, **MALFORMED[case])
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    payload = response.json()
    assert payload.get("status") == "error" and payload.get("error"), (response.status_code, payload)
    assert len(response.content) < 20_000, "the answer should not echo a huge input back"


@pytest.mark.parametrize("depth", [1_000, 20_000])
def test_a_body_nested_too_deeply_is_a_422_saying_so(service, depth):
    response = requests.post(service.url("/tasks"), timeout=30, **raw('{"url": ' + "[" * depth + "]" * depth + "}"))
    assert response.status_code == 422 and "nested too deeply" in response.json()["error"]


def test_an_oversized_body_gets_413_before_it_is_parsed(service):
    response = requests.post(service.url("/tasks"), timeout=30, **MALFORMED["oversized body"])
    assert response.status_code == 413 and "65,536" in response.json()["error"]


def test_a_number_too_long_for_the_json_reader_is_a_422_saying_so(service):
    response = requests.post(service.url("/tasks"), timeout=30, **with_number("seed", "9" * 5000))
    assert response.status_code == 422, response.text
    assert "4300 digits" in response.json()["error"] and "set_int_max_str_digits" not in response.text


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_a_body_sent_without_a_json_content_type_is_a_422_that_says_what_to_send(service, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    for route in ("/tasks", "/tasks/batch"):
        response = requests.post(service.url(route), data=json.dumps({"url": GOOD_URL}), headers=headers, timeout=30)
        assert response.status_code == 422
        assert "Content-Type: application/json" in response.json()["error"], response.text


def test_a_number_out_of_range_is_refused_naming_the_field(service):
    response = requests.post(service.url("/tasks"), timeout=30, **MALFORMED["outscale 1e308"])
    assert response.status_code == 422 and "outscale" in response.json()["error"]
    response = requests.post(service.url("/tasks"), timeout=30, **MALFORMED["dims over the pixel limit"])
    assert response.status_code == 422 and "output_dims" in response.json()["error"]


def test_the_service_is_healthy_after_the_malformed_requests(service, input_server):
    for case in MALFORMED.values():
        requests.post(service.url("/tasks"), timeout=30, **case)
    assert requests.get(service.url("/health"), timeout=10).json()["status"] == "ok"
    task = service.run(url=input_server.add("after-bad.png", png_bytes(8, 8)), type="image", model="tiny-x4.pth")
    assert task["status"] == "completed", task["error"]
