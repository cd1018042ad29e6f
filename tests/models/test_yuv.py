"""The device-side conversions against swscale's: RGB → YUV 4:2:0 as the encoder's on the CPU, and
YUV 4:2:0 → RGB as the decoder's."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from tmlsr_ray.models.yuv import (MATRICES, SWS_MATRIX_TAG, Yuv420, Yuv420Frames, converts_like_swscale, decoded_layout,
                                  rgb_to_yuv420, yuv420_to_rgb)
from tmlsr_ray.pipeline.decode import EXACT_SWS, frame_to_rgb


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



def decoder_planes(width: int, height: int, layout: Yuv420, seed: int = 0) -> np.ndarray:
    """4:2:0 planes as a decoder gives them: natural frames through swscale, then pure noise in a
    corner (chroma far from any RGB a camera makes)."""
    planes = swscale_planes(natural_rgb(width, height, np.uint8, seed), layout)
    planes[: height // 4, : width // 4] = np.random.default_rng(seed).integers(0, 256, (height // 4, width // 4))
    return planes


def decoder_rgb(planes: np.ndarray, layout: Yuv420, rotation: int = 0) -> np.ndarray:
    """What the CPU decode path makes of them (frame_to_rgb, with the frame's tags)."""
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.colorspace, frame.color_range = SWS_MATRIX_TAG[layout.matrix], 2 if layout.full_range else 1
    return frame_to_rgb(frame, "rgb24", rotation)


@pytest.mark.parametrize("matrix", sorted(MATRICES))
@pytest.mark.parametrize("full_range", [False, True])
def test_the_device_conversion_of_decoded_planes_equals_swscale_within_one_level(matrix, full_range):
    layout = Yuv420(matrix, full_range)
    planes = decoder_planes(96, 64, layout)
    got = yuv420_to_rgb(torch.from_numpy(planes)[None], layout)[0].permute(1, 2, 0).numpy().astype(int)
    off = np.abs(got - decoder_rgb(planes, layout).astype(int))
    # swscale's fixed point overflows on a rare extreme noise sample (white where it should saturate)
    assert (off <= 1).mean() >= 0.999 and (off > 0).mean() < 0.02, f"{(off > 0).mean():.4f} differ"


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
def test_decoded_planes_turn_upright_as_the_decoder_turns_its_rgb(rotation):
    layout = Yuv420("ITU709")
    planes = np.stack([decoder_planes(48, 32, layout, seed) for seed in range(2)])
    frames = Yuv420Frames(planes, layout, rotation // 90)
    got = frames.rgb().astype(int)
    expected = np.stack([decoder_rgb(p, layout, rotation) for p in planes]).astype(int)
    assert frames.size == expected.shape[1:3] and got.shape == expected.shape
    assert (np.abs(got - expected) <= 1).mean() >= 0.999


@pytest.mark.parametrize("pix_fmt,colorspace,color_range,size,layout", [
    ("yuv420p", 1, 1, (64, 48), Yuv420("ITU709", False)),
    ("yuv420p", 2, 0, (64, 48), Yuv420("ITU601", False)),  # untagged: swscale's BT.601
    ("yuvj420p", 5, 0, (64, 48), Yuv420("ITU601", True)),
    ("yuv420p", 9, 2, (64, 48), Yuv420("BT2020", True)),
    ("yuv420p10le", 9, 1, (64, 48), None),  # 10-bit: the decoder converts
    ("yuv422p", 1, 1, (64, 48), None),
    ("yuv420p", 1, 1, (63, 48), None),  # odd width
    ("yuv420p", 8, 1, (64, 48), None),  # YCgCo: no swscale matrix
])
def test_only_frames_converted_as_swscale_would_go_to_the_model_as_planes(pix_fmt, colorspace, color_range, size,
                                                                          layout):
    assert decoded_layout(pix_fmt, colorspace, color_range, *size) == layout


def test_a_model_takes_the_decoders_planes_as_it_takes_their_rgb(tmp_path):
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.realesrgan import RealESRGANModel
    from tmlsr_ray.models.transfer import StagedPasses

    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=4, weight_scale=0.05), device="cpu")
    layout = Yuv420("ITU709")
    planes = np.stack([decoder_planes(24, 16, layout, seed) for seed in range(3)])
    rgb = np.stack([decoder_rgb(p, layout, 90) for p in planes])
    expected = model.upscale_samples(rgb, (40, 60)).astype(int)
    for passes in (model.passes, StagedPasses(torch.device("cpu"))):  # the GPU's staging, on CPU tensors
        model.passes = passes
        got = model.upscale_samples(Yuv420Frames(planes, layout, 1), (40, 60))
        assert got.shape == expected.shape == (3, 60, 40, 3) and got.dtype == np.uint8
        assert (np.abs(got.astype(int) - expected) <= 1).mean() >= 0.99
        out = model.upscale_samples(Yuv420Frames(planes, layout, 1), (40, 60), Yuv420("ITU709"))
        assert out.shape == (3, 90, 40)  # and the encoder's planes out
