"""SeedVR2 output sizes: resolution is the output height, else the usual scale fields."""

import pytest

from tmlsr_ray.pipeline.upscale import SizeRequest, processing_resolution, target_size


@pytest.mark.parametrize("size,resolution,expected", [
    ((640, 360), 1080, (1920, 1080)),   # landscape: the height is the short side
    ((360, 640), 1080, (608, 1080)),    # portrait: still the height; the model runs at width 608
    ((56, 40), 64, (90, 64)),
    ((1920, 1080), 720, (1280, 720)),   # larger input: restored at the smaller size
])
def test_resolution_is_the_output_height_whatever_the_orientation(size, resolution, expected):
    target = target_size(*size, None, SizeRequest(outscale=3, output_dims=(10, 10)), resolution)
    assert target == expected
    assert processing_resolution(target) == min(expected)


def test_without_resolution_the_scale_fields_apply_and_the_default_is_x2():
    assert target_size(100, 50, None, SizeRequest()) == (200, 100)
    assert target_size(100, 50, None, SizeRequest(outscale=3)) == (300, 150)
    assert target_size(100, 50, None, SizeRequest(output_dims=(64, 48))) == (64, 48)
