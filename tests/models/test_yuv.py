"""The device-side RGB → YUV 4:2:0 conversion against swscale's, the one the encoder uses on the CPU."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from tmlsr_ray.models.yuv import MATRICES, Yuv420, converts_like_swscale, rgb_to_yuv420
from tmlsr_ray.pipeline.decode import EXACT_SWS


def natural_rgb(width: int, height: int, dtype, seed: int = 0) -> np.ndarray:
    """Gradients, noise, saturated corners and pure white: what upscaled frames hold."""
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([np.sin(x / 7) * 0.5 + 0.5, np.cos(y / 5) * 0.5 + 0.5, (x + y) / (width + height)], -1)
    image = np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1)
    image[: height // 4, : width // 4] = [1.0, 0.0, 0.0]
    image[-height // 4:, -width // 4:] = [1.0, 1.0, 1.0]
    return (image * top).round().astype(dtype)


def swscale_planes(rgb: np.ndarray, layout: Yuv420) -> np.ndarray:
    """What PieceWriter's conversion on the CPU gives."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
    frame = frame.reformat(format=layout.pix_fmt, dst_colorspace=layout.matrix,
                           dst_color_range="JPEG" if layout.full_range else "MPEG", interpolation=EXACT_SWS)
    return frame.to_ndarray()


@pytest.mark.parametrize("source_dtype,bits", [(np.uint8, 8), (np.uint8, 10), (np.uint16, 10)])
@pytest.mark.parametrize("matrix", sorted(MATRICES))
@pytest.mark.parametrize("full_range", [False, True])
def test_the_device_conversion_equals_swscale_within_one_level(source_dtype, bits, matrix, full_range):
    layout = Yuv420(matrix, full_range, bits)
    assert converts_like_swscale(layout, source_dtype == np.uint16, 96, 64)
    rgb = natural_rgb(96, 64, source_dtype)
    expected = swscale_planes(rgb, layout).astype(np.int64)
    white = 65535.0 if source_dtype == np.uint16 else 255.0
    got = rgb_to_yuv420(torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None], white, layout)[0]
    assert got.shape == expected.shape == (96, 96)
    off = np.abs(got.numpy().astype(np.int64) - expected)
    assert off.max() <= 1 and (off > 0).mean() < 0.1, f"{(off > 0).mean():.3f} of the samples differ"


def test_planes_come_as_8_bit_or_as_int32_holding_10_bit_values():
    frames = torch.full((2, 3, 4, 6), 255.0)
    assert rgb_to_yuv420(frames, 255.0, Yuv420()).dtype == torch.uint8
    ten = rgb_to_yuv420(frames * 257, 65535.0, Yuv420("BT2020", False, 10))
    assert ten.dtype == torch.int32 and ten.shape == (2, 6, 6) and int(ten[0, 0, 0]) == 943  # white over 65280


def test_16_bit_samples_to_8_bits_and_odd_sizes_are_left_to_swscale():
    """swscale dithers 16-bit samples down to 8 bits (a quarter of the samples a level apart)."""
    assert not converts_like_swscale(Yuv420(bits=8), True, 96, 64)
    assert not converts_like_swscale(Yuv420(bits=10), False, 95, 64)
    assert converts_like_swscale(Yuv420(bits=10), True, 96, 64)


def test_a_model_hands_back_the_encoders_planes_as_swscale_would_convert_its_frames(tmp_path):
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.realesrgan import RealESRGANModel

    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=4, weight_scale=0.05), device="cpu")
    frames = np.stack([natural_rgb(24, 16, np.uint8, seed) for seed in range(3)])
    layout = Yuv420("ITU709", False, 8)
    planes = model.upscale_samples(frames, (60, 40), layout)
    rgb = model.upscale_samples(frames, (60, 40))
    assert planes.shape == (3, 60, 60) and planes.dtype == np.uint8
    for got, frame in zip(planes, rgb):
        assert np.abs(got.astype(int) - swscale_planes(frame, layout).astype(int)).max() <= 1
    deep = model.upscale_samples(frames.astype(np.uint16) * 257, (60, 40), layout)  # swscale's to dither
    assert deep.shape == (3, 40, 60, 3) and deep.dtype == np.uint16
