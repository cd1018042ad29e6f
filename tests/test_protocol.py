import pytest
from pydantic import ValidationError

from tmlsr_ray.protocol import TaskRequest

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
