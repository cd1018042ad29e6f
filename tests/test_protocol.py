import json
import math
import re
import typing

import pytest
from pydantic import BaseModel, ValidationError

from tests.helpers import REPO
from tmlsr_ray.protocol import CancelResult, Health, MonitorStats, TaskCreated, TaskRequest, TaskView

URL = "http://h/a.png"


@pytest.mark.parametrize("field,value", [
    ("outscale", True), ("outscale", "2"), ("output_magnification", False), ("output_dims", [True, True]),
    ("output_dims", ["201", "99"]), ("resolution", "1080"), ("seed", "12"), ("output_quality", True),
    ("crf", "20"), ("deadline_s", "100"), ("callback_progress", "yes"), ("callback_progress", 1),
])
def test_a_number_or_flag_sent_as_another_json_type_is_refused_naming_the_field(field, value):
    """Read leniently, true made a ×1 job and [true, true] a 1×1 output."""
    with pytest.raises(ValidationError) as caught:
        TaskRequest.model_validate({"url": URL, field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_numbers_are_taken_as_json_writes_them():
    request = TaskRequest.model_validate({"url": URL, "outscale": 2, "output_magnification": 1.5,
                                          "output_dims": [201.0, 99], "seed": 7, "deadline_s": 60,
                                          "callback_progress": True})
    assert (request.outscale, request.output_dims, request.deadline_s) == (2.0, (201, 99), 60.0)
    assert TaskRequest.model_validate_json('{"url": "%s", "outscale": 4, "crf": 20}' % URL).crf == 20


def test_the_largest_seed_is_taken_and_the_refusal_of_a_larger_one_names_it_exactly():
    """A limit of lt=2**63 was printed as the float 9223372036854776000, a number one cannot send."""
    assert TaskRequest(url=URL, seed=2**63 - 1).seed == 2**63 - 1
    with pytest.raises(ValidationError) as caught:
        TaskRequest(url=URL, seed=2**63)
    assert "9223372036854775807" in caught.value.errors()[0]["msg"]


def _contract_examples():
    """The JSON examples of docs/TMLSR-API.md by the endpoint heading above them, `{ ... }` as {}."""
    examples, heading = {}, None
    for block in re.split(r"```(?:json)?", (REPO / "docs" / "TMLSR-API.md").read_text()):
        found = re.findall(r"^### \d+\. (.+)$", block, re.M)
        if block.lstrip().startswith("{"):
            text = block.replace("{ ... }", "{}").replace("[ ... ]", "[]")
            examples.setdefault(heading, []).append(json.loads(text))
        elif found:
            heading = found[-1]
    return examples


def _keys_within(example: dict, model) -> None:
    """Every key of a contract example is a field of the model, nested models and lists included."""
    for key, value in example.items():
        assert key in model.model_fields, f"{model.__name__} has no field {key!r} of the contract"
        inner = model.model_fields[key].annotation
        for candidate in typing.get_args(inner) + (inner,):
            nested = typing.get_args(candidate)[0] if typing.get_origin(candidate) is list else candidate
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, dict):
                        _keys_within(item, nested)


def test_every_field_of_the_shipped_contract_is_in_the_schema():
    examples = _contract_examples()
    table = re.findall(r"^\| `(\w+)` \|", (REPO / "docs" / "TMLSR-API.md").read_text(), re.M)
    assert table and set(table) <= set(TaskRequest.model_fields)
    health, (standard, seedvr2, created), (view,), (canceled,), (stats,) = (
        examples["Health Check"], examples["Create Task"], examples["Get Task Status"], examples["Cancel Task"],
        examples["Monitor Stats"])
    assert TaskRequest.model_validate(standard).output_magnification == 1.5
    assert TaskRequest.model_validate(seedvr2).resolution == 1080
    for example, model in ((health[0], Health), (created, TaskCreated), (view, TaskView), (canceled, CancelResult),
                           (stats, MonitorStats)):
        _keys_within(example, model)
    assert MonitorStats.model_validate(stats).system.max_workers == 2
    assert TaskView.model_validate(view).stages[1].duration == 120.0


def test_a_denoise_strength_is_rounded_to_a_thousandth_and_one_that_rounds_to_1_is_the_file_as_it_is():
    """0.3 and 0.30000001 (two clients' float formatting) were two mixed copies of the network in a
    replica's cache, and two different metadata.denoise_strength."""
    from tmlsr_ray.serve.runner import variant_args

    def params(strength):
        return TaskRequest(url=URL, denoise_strength=strength).model_dump(mode="json")

    assert params(0.30000001)["denoise_strength"] == params(0.3)["denoise_strength"] == 0.3
    assert variant_args(params(0.30000001)) == variant_args(params(0.2996)) == {"denoise": 0.3}
    assert params(0.0004)["denoise_strength"] == 0
    assert params(0.2995)["denoise_strength"] == 0.3 and params(0.0015)["denoise_strength"] == 0.002, \
        "halves rounded as binary floats do: 0.2995 down, 0.0015 up"
    assert math.copysign(1, params(-0.0)["denoise_strength"]) == 1, "-0 was kept apart from 0"
    assert variant_args(params(0.99951)) == {}, "a strength that rounds to 1 mixed a copy of the file as it is"
