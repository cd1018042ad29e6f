import numpy as np
import pytest
import torch

from tmlsr_ray.errors import CanceledError, InputError
from tmlsr_ray.models.base import TilingAdvice
from tmlsr_ray.models.realesrgan import RealESRGANModel
from tmlsr_ray.pipeline.upscale import SizeRequest, Tiling, check_output_size, upscale_frames, upscale_image


@pytest.fixture(scope="module")
def tiny(tiny_model_path):
    return RealESRGANModel(tiny_model_path, device="cpu")


def test_default_size_is_the_model_scale():
    assert SizeRequest().output_size(451, 300, 4) == (1804, 1200)


def test_outscale_resizes_the_model_output_with_rounding():
    assert SizeRequest(outscale=3.5).output_size(451, 301, 4) == (1578, 1054)  # 1578.5 -> even, 1053.5
    assert SizeRequest(outscale=2).output_size(451, 300, 4) == (902, 600)


def test_output_magnification_overrides_outscale():
    assert SizeRequest(outscale=4, output_magnification=1.5).output_size(100, 50, 4) == (150, 75)


def test_output_dims_override_everything():
    assert SizeRequest(outscale=4, output_magnification=1.5, output_dims=(333, 77)).output_size(100, 50, 4) == (333, 77)


def test_output_pixel_limit_counts_the_native_model_output_too():
    with pytest.raises(InputError, match="over the limit"):
        check_output_size(3000, 3000, 4, (100, 100), max_pixels=100_000_000)
    check_output_size(1000, 1000, 4, (4000, 4000), max_pixels=16_000_000)


def test_a_model_of_any_scale_counts_only_the_output_it_renders():
    """SeedVR2 renders at the output's size: a 12000×8000 photo asked at 1080 lines was refused as a
    '×1 native output' of 96 Mpx under a 33 Mpx limit."""
    check_output_size(12000, 8000, None, (1620, 1080), max_pixels=33_177_600)
    with pytest.raises(InputError, match=r"^output would be 160,000,000 pixels \(80000x2000 after rendering "
                                         r"80000x2000\), over the limit"):
        check_output_size(4000, 100, None, (80000, 2000), max_pixels=33_177_600)


def test_a_model_of_any_scale_counts_the_frames_it_renders_at_the_inputs_aspect():
    """SeedVR2 renders the input's aspect at the output's short side, then resizes to the output: a
    400×4000 input asked at 4000×4000 (16 Mpx) rendered 4000×40000 frames (160 Mpx) under a 33 Mpx
    limit, since only the output was counted."""
    with pytest.raises(InputError, match=r"^output would be 160,000,000 pixels \(4000x4000 after rendering "
                                         r"4000x40000\), over the limit of 33,177,600"):
        check_output_size(400, 4000, None, (4000, 4000), max_pixels=33_177_600)
    check_output_size(400, 4000, None, (400, 4000), max_pixels=33_177_600)


@pytest.mark.parametrize(
    "shape,dtype",
    [((20, 24), np.uint8), ((20, 24, 3), np.uint8), ((20, 24, 4), np.uint8), ((20, 24, 4), np.uint16)],
    ids=["gray8", "bgr8", "bgra8", "bgra16"],
)
def test_layout_and_bit_depth_are_kept(tiny, shape, dtype):
    image = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    out = upscale_image(tiny, image, (48, 40))
    assert out.shape == (40, 48) + shape[2:] and out.dtype == dtype


def test_alpha_is_upscaled_by_the_model_not_dropped(tiny):
    image = np.zeros((16, 16, 4), np.uint8)
    image[:, :, 3] = 255
    image[:8, :, 3] = 0
    out = upscale_image(tiny, image, (64, 64))
    alpha = out[:, :, 3].astype(int)
    assert alpha[:24].mean() < alpha[40:].mean()


def test_sixteen_bit_images_use_the_full_range(tiny):
    image = np.full((8, 8, 3), 40000, np.uint16)
    out = upscale_image(tiny, image, (32, 32))
    assert out.max() > 255


def test_tiles_agree_with_the_whole_image_when_the_pad_covers_the_receptive_field(tiny):
    image = np.random.default_rng(2).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    whole = upscale_image(tiny, image, (360, 280))
    tiled = upscale_image(tiny, image, (360, 280), Tiling(tile_size=32, tile_pad=8, min_pixels=0))
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1


def test_a_stop_request_ends_tiled_work_between_tiles(tiny):
    calls = []
    image = np.zeros((64, 64, 3), np.uint8)

    def stop_after_two():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(CanceledError):
        upscale_image(tiny, image, (256, 256), Tiling(tile_size=16, tile_pad=4, min_pixels=0), stop_after_two)
    assert len(calls) == 3


@pytest.mark.parametrize("fits", [True, False])
def test_video_frames_that_fit_the_gpu_run_whole_there_whatever_the_tiling_threshold(tiny_model_path, fits):
    """On a GPU, tiles would convert and resize on the host: a 1080p frame (above the tiling
    threshold) that fits the device runs whole, resized there; one that does not, in tiles."""
    model = RealESRGANModel(tiny_model_path, device="cpu")
    model.device = "cuda:0"  # the routing only; the network still runs on the CPU here
    model.fits_whole = lambda height, width: fits
    tiled = []
    float_path = model.upscale
    model.upscale = lambda planes: tiled.append(planes.shape) or float_path(planes)
    frames = np.random.default_rng(4).integers(0, 256, (2, 20, 24, 3)).astype(np.uint8)
    out = upscale_frames(model, frames, (60, 50), Tiling(tile_size=16, tile_pad=4, min_pixels=100))
    assert out.shape == (2, 50, 60, 3) and out.dtype == np.uint8
    assert bool(tiled) is not fits
    if fits:
        assert np.array_equal(out, model.upscale_samples(frames, (60, 50)))


def _model_advising(tiny_model_path, advice: str):
    """A model saying how it takes tiles (``tiling``) that never fits whole in memory, recording
    the input shape of each call of its float path (the tiled one)."""
    model = RealESRGANModel(tiny_model_path, device="cpu")
    model.tiling, model.fits_in_memory = TilingAdvice(advice), lambda height, width: False
    model.seen = []
    float_path = model.upscale
    model.upscale = lambda planes: model.seen.append(planes.shape[1:3]) or float_path(planes)
    return model


def test_a_model_that_tiles_the_image_itself_is_never_tiled_whatever_its_size(tiny_model_path):
    """spandrel's ModelTiling.INTERNAL: tiles before the model would cut what it needs whole."""
    model = _model_advising(tiny_model_path, "internal")
    image = np.random.default_rng(5).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    frames = np.random.default_rng(6).integers(0, 256, (2, 20, 24, 3), dtype=np.uint8)
    tiling = Tiling(tile_size=8, tile_pad=2, min_pixels=100)
    assert upscale_image(model, image, (96, 80), tiling).shape == (80, 96, 3)
    assert np.array_equal(upscale_frames(model, frames, (96, 80), tiling), model.upscale_samples(frames))
    assert model.seen == [(20, 24)]


def test_a_model_that_discourages_tiling_and_does_not_fit_whole_is_tiled_with_a_wider_overlap_and_says_so(
        tiny_model_path, caplog):
    model = _model_advising(tiny_model_path, "discouraged")
    image = np.random.default_rng(5).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    with caplog.at_level("WARNING", logger="tmlsr_ray.pipeline.upscale"):
        upscale_image(model, image, (96, 80), Tiling(tile_size=10, tile_pad=1, min_pixels=100))
    assert model.seen[:2] == [(10, 10), (10, 12)]  # overlapping by a quarter of the tile (2), not 1
    assert "discourages tiling, but a 24x20 input does not fit whole in memory: tiles of 8 overlapping by 2" in caplog.text


def test_a_model_that_discourages_tiling_takes_its_wider_overlap_out_of_the_tile_not_more_memory(tiny_model_path):
    """The overlap of a quarter of the tile went on top of the tile: at the default 512 / 32 a
    pass took 768x768 pixels, not 576x576 (1.8 times the memory, where the model did not fit)."""
    model = _model_advising(tiny_model_path, "discouraged")
    image = np.random.default_rng(5).integers(0, 256, (40, 44, 3), dtype=np.uint8)
    upscale_image(model, image, (176, 160), Tiling(tile_size=16, tile_pad=2, min_pixels=100))
    assert max(max(shape) for shape in model.seen) == 16 + 2 * 2
    assert model.seen[0] == (17, 17)  # the first tile, 14x14 (was 16x16), overlapping by 3 (was 4) into the next


def test_a_model_tiled_against_its_advice_says_so_once_per_size_each_time_it_is_loaded(tiny_model_path, caplog):
    """The warning was remembered per model name in a cache of the process: a file replaced and
    loaded again, or a model of the same name in another test, never said it."""
    image = np.random.default_rng(5).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    tiling = Tiling(tile_size=8, tile_pad=1, min_pixels=100)
    said = []
    for _ in range(2):  # loaded twice (its file replaced), each load tiling that size twice
        model = _model_advising(tiny_model_path, "discouraged")
        for _ in range(2):
            caplog.clear()
            with caplog.at_level("WARNING", logger="tmlsr_ray.pipeline.upscale"):
                upscale_image(model, image, (96, 80), tiling)
            said.append("discourages tiling" in caplog.text)
    assert said == [True, False, True, False]


def test_decoded_planes_a_cpu_model_is_handed_are_converted_on_the_host_first(tmp_path):
    """On a CPU the decoder's conversion keeps the reference semantics: no planes are asked for,
    and planes that come anyway are made RGB before the model."""
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.realesrgan import RealESRGANModel
    from tmlsr_ray.models.yuv import Yuv420, Yuv420Frames, rgb_to_yuv420
    from tmlsr_ray.pipeline.upscale import takes_planes, upscale_frames

    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=2, weight_scale=0.05), device="cpu")
    assert not takes_planes(model, 16, 24)
    rgb = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    planes = Yuv420Frames(rgb_to_yuv420(torch.from_numpy(rgb).permute(0, 3, 1, 2), 255.0, Yuv420()).numpy(), Yuv420())
    got = upscale_frames(model, planes, (48, 32))
    assert np.array_equal(got, upscale_frames(model, planes.rgb(), (48, 32)))


def _model_out_of_device_memory_at(tiny_model_path, size):
    """A model whose network runs out of device memory at inputs of ``size`` = (height, width):
    a frame of that size run whole, where other work holds the device."""
    model = RealESRGANModel(tiny_model_path, device="cpu")
    forward = model._forward

    def full_device_at(batch):
        if tuple(batch.shape[2:]) == size:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(batch)

    model._forward = full_device_at
    return model


def test_a_frame_run_whole_that_meets_a_full_device_is_tiled_that_time_as_the_tiled_path_tiles_it(
        tiny_model_path, caplog):
    """Whether a frame runs whole follows the device's total memory, so other work may leave too
    little of it free: that call is tiled, where it failed."""
    model = _model_out_of_device_memory_at(tiny_model_path, (20, 24))
    model.tiling = TilingAdvice.DISCOURAGED  # it fits whole: the tiling threshold does not tile it
    tiled = _model_advising(tiny_model_path, "discouraged")
    image = np.random.default_rng(5).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    frames = np.random.default_rng(6).integers(0, 256, (2, 20, 24, 3), dtype=np.uint8)
    tiling = Tiling(tile_size=10, tile_pad=1, min_pixels=100)
    with caplog.at_level("WARNING", logger="tmlsr_ray.pipeline.upscale"):
        assert np.array_equal(upscale_image(model, image, (96, 80), tiling), upscale_image(tiled, image, (96, 80), tiling))
        assert np.array_equal(upscale_frames(model, frames, (96, 80), tiling),
                              upscale_frames(tiled, frames, (96, 80), tiling))
    assert caplog.text.count("out of device memory running a frame whole") == 2


def test_a_single_small_frame_that_meets_a_full_device_is_tiled_as_a_batch_of_them_is(tiny_model_path):
    """Frames under the tiling threshold run whole; one that met a full device was run whole
    again, as a batch under the threshold, and failed out of memory, where a batch of two such
    frames was tiled (a segment's last batch of one frame failed the segment)."""
    model = _model_out_of_device_memory_at(tiny_model_path, (20, 24))
    tiling = Tiling(tile_size=10, tile_pad=2, min_pixels=500)  # 20x24 = 480 pixels, two frames 960
    tiled = RealESRGANModel(tiny_model_path, device="cpu")
    for count in (2, 1):
        frames = np.random.default_rng(count).integers(0, 256, (count, 20, 24, 3), dtype=np.uint8)
        assert np.array_equal(upscale_frames(model, frames, (96, 80), tiling),
                              upscale_frames(tiled, frames, (96, 80), Tiling(10, 2, min_pixels=0)))


def test_an_image_under_the_tiling_threshold_that_meets_a_full_device_is_tiled_as_a_frame_is(tiny_model_path):
    """A picture small enough to run whole ran whole without the out-of-memory fallback frames
    have: it failed where the same picture as a video frame was tiled."""
    model = _model_out_of_device_memory_at(tiny_model_path, (20, 24))
    tiled = RealESRGANModel(tiny_model_path, device="cpu")
    image = np.random.default_rng(7).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    assert np.array_equal(upscale_image(model, image, (96, 80), Tiling(10, 2, min_pixels=500)),
                          upscale_image(tiled, image, (96, 80), Tiling(10, 2, min_pixels=0)))
