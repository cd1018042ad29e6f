"""The torch Lanczos resize against cv2.resize(INTER_LANCZOS4), up and down, at many sizes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tmlsr_ray.models import lanczos
from tmlsr_ray.models.lanczos import BLOCK, Lanczos4, lanczos4_resize, lanczos4_taps

SIZES = [((64, 48), (256, 192)), ((64, 48), (100, 77)), ((37, 29), (111, 58)), ((256, 192), (64, 48)),
         ((200, 120), (133, 91)), ((50, 50), (50, 101)), ((96, 64), (95, 63)), ((31, 17), (248, 136))]


def natural(width: int, height: int, dtype, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise and hard edges: what frames hold, and what rings."""
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    y, x = np.mgrid[0:height, 0:width]
    base = (np.sin(x / 5.0) * np.cos(y / 7.0) * 0.4 + 0.5)[..., None] * np.array([1.0, 0.8, 0.6])
    image = base + rng.normal(0, 0.05, (height, width, 3))
    image[height // 3: height // 2, width // 4: width // 2] = [1.0, 0.0, 1.0]
    return (np.clip(image, 0, 1) * top).round().astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("source,target", SIZES)
def test_the_torch_resize_matches_opencv_within_one_level(source, target, dtype):
    image = natural(*source, dtype)
    expected = cv2.resize(image, target, interpolation=cv2.INTER_LANCZOS4).astype(np.int64)
    planes = torch.from_numpy(image).permute(2, 0, 1)[None]
    got = lanczos4_resize(planes, target)[0].permute(1, 2, 0).numpy().astype(np.int64)
    assert got.shape == expected.shape and got.dtype == np.int64
    unit = 257 if dtype == np.uint16 else 1  # one 8-bit level, in 16-bit samples
    within = np.abs(got - expected) <= unit
    assert within.mean() >= 0.999, f"{(~within).sum()} of {within.size} values off by more than a level"


def dense_band(source: int, destination: int) -> np.ndarray:
    """The axis's whole (destination, source) matrix, from the same taps."""
    indices, weights = lanczos4_taps(source, destination)
    matrix = np.zeros((destination, source))
    np.add.at(matrix, (np.arange(destination)[:, None].repeat(indices.shape[1], 1), indices), weights)
    return matrix


@pytest.mark.parametrize("source,destination", [(5, 1), (3, 7), (7, 3), (1, 9), (BLOCK * 3 + 17, BLOCK * 2 - 5),
                                                (640, 1920), (1280, 640), (301, BLOCK + 1), (1000, 999)])
def test_the_blocked_resize_equals_the_whole_band_matrix_product(source, destination):
    """Blocks, windows and edge clamping add up to the full matrix, partial last block included."""
    rng = np.random.default_rng(1)
    planes = rng.uniform(0, 255, (2, source, source // 2 + 3))
    expected = dense_band(source, destination) @ planes
    got = lanczos4_resize(torch.from_numpy(planes).float()[None], (planes.shape[2], destination))[0]
    assert got.shape == expected.shape
    assert np.abs(got.double().numpy() - expected).max() < 1e-3


def test_the_taps_sum_to_one_and_stay_inside_the_source():
    for source, destination in [(5120, 2560), (720, 2880), (3, 1), (1, 4)]:
        indices, weights = lanczos4_taps(source, destination)
        assert indices.min() >= 0 and indices.max() < source
        assert np.allclose(weights.sum(axis=1), 1.0)


def test_a_resizer_computes_the_taps_of_a_size_once(monkeypatch):
    """Computing the taps costs more than resizing a frame: a model's resizer keeps them."""
    planned = []
    original = lanczos.axis_plan.__wrapped__
    monkeypatch.setattr(lanczos, "axis_plan", lambda *size: planned.append(size) or original(*size))
    resize = Lanczos4()
    for _ in range(3):
        resize(torch.rand(1, 3, 30, 40), (100, 70))
    assert planned == [(40, 100), (30, 70)]


def test_float_samples_keep_their_dtype_and_a_same_size_resize_is_the_identity():
    frames = torch.rand(2, 3, 20, 30)
    same = lanczos4_resize(frames, (30, 20))
    assert same.dtype == torch.float32 and torch.allclose(same, frames, atol=1e-6)
    assert lanczos4_resize(frames.half(), (60, 40)).dtype == torch.float16


def test_a_model_resizes_where_it_runs_as_opencv_would_after_it(tmp_path):
    """The device path (used on CUDA) run on the CPU: the same frames as cv2 after the model, ±1."""
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.realesrgan import RealESRGANModel
    from tmlsr_ray.pipeline.upscale import resize_frames

    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=4, weight_scale=0.05), device="cpu")
    frames = np.stack([natural(40, 24, np.uint8, seed) for seed in range(2)])
    on_device = model.upscale_samples(frames, (100, 60)).astype(np.int64)
    after = resize_frames(model.upscale_samples(frames), (100, 60)).astype(np.int64)
    assert on_device.shape == after.shape == (2, 60, 100, 3)
    assert (np.abs(on_device - after) <= 1).mean() >= 0.999
