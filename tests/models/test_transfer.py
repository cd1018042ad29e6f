"""The staging buffers and overlapped passes of the GPU path, run on CPU tensors (no page-locking,
no streams): their bookkeeping is the same code a GPU runs."""

import numpy as np
import pytest
import torch

from tests.helpers import save_srvgg
from tmlsr_ray.models.realesrgan import RealESRGANModel
from tmlsr_ray.models.transfer import DirectPasses, PinnedPool, StagedPasses


class CopyStillRunning:
    """Stands in for the CUDA event of a copy that still reads a buffer."""

    def __init__(self):
        self.waited = False

    def synchronize(self):
        self.waited = True


def test_a_buffer_given_back_is_handed_out_again_for_the_same_shape_and_type():
    pool = PinnedPool(pin=False)
    first = pool.take((2, 4, 3), torch.uint8)
    pool.give(first)
    again = pool.take((2, 4, 3), torch.uint8)
    assert again.data_ptr() == first.data_ptr() and pool.allocated == 1
    other_shape, other_type = pool.take((1, 4, 3), torch.uint8), pool.take((2, 4, 3), torch.int32)
    assert len({again.data_ptr(), other_shape.data_ptr(), other_type.data_ptr()}) == 3 and pool.allocated == 3


def test_a_buffer_still_being_read_is_handed_out_only_after_its_copy_ends():
    pool = PinnedPool(pin=False)
    copy = CopyStillRunning()
    pool.give(pool.take((8,), torch.float32), ready=copy)
    assert not copy.waited
    pool.take((8,), torch.float32)
    assert copy.waited


def test_free_buffers_beyond_the_byte_cap_are_released_oldest_first():
    pool = PinnedPool(pin=False, max_bytes=100)
    old, new = pool.take((60,), torch.uint8), pool.take((50,), torch.uint8)
    pool.give(old)
    pool.give(new)
    assert pool.free_bytes == 50
    assert pool.take((50,), torch.uint8).data_ptr() == new.data_ptr()
    pool.take((60,), torch.uint8)
    assert pool.allocated == 3  # the 60-byte one had gone


def double_then_shift(batch: torch.Tensor) -> torch.Tensor:
    """A stand-in network: ×2 in size, int32 results (as 16-bit frames get) cast back to the frames' type."""
    return batch.to(torch.int32).repeat_interleave(2, dim=1).repeat_interleave(2, dim=2) + 7


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("per_pass", [1, 2, 5, 7])
def test_staged_passes_assemble_the_same_frames_as_direct_passes_in_order(dtype, per_pass):
    frames = np.random.default_rng(0).integers(0, 200, (5, 6, 4, 3)).astype(dtype)
    expected = DirectPasses().run(frames, per_pass, double_then_shift, dtype)
    out = StagedPasses(torch.device("cpu")).run(frames, per_pass, double_then_shift, dtype)
    assert out.dtype == dtype and out.shape == (5, 12, 8, 3)
    assert np.array_equal(out, expected)


def test_a_second_batch_of_the_same_shape_makes_no_new_buffers():
    passes = StagedPasses(torch.device("cpu"))
    frames = np.zeros((5, 6, 4, 3), np.uint8)
    passes.run(frames, 2, double_then_shift, np.uint8)
    made = passes.pool.allocated
    passes.run(frames + 1, 2, double_then_shift, np.uint8)
    assert passes.pool.allocated == made


def test_a_model_on_staged_passes_gives_the_frames_of_the_direct_path(tmp_path):
    path = save_srvgg(tmp_path / "m.pth", scale=2)
    direct, staged = RealESRGANModel(path, device="cpu"), RealESRGANModel(path, device="cpu")
    staged.passes = StagedPasses(torch.device("cpu"))
    samples = np.random.default_rng(1).integers(0, 256, (3, 10, 14, 3)).astype(np.uint8)
    floats = np.random.default_rng(2).random((2, 9, 7, 3), dtype=np.float32)
    assert isinstance(direct.passes, DirectPasses)
    assert np.array_equal(staged.upscale_samples(samples, (30, 17)), direct.upscale_samples(samples, (30, 17)))
    assert np.array_equal(staged.upscale(floats), direct.upscale(floats))


# How each layer says it: torch's allocator, cuDNN's workspace (cuDNN 8, then 9), a kernel launch.
OUT_OF_MEMORY = [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                 RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
                 RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED"),
                 RuntimeError("CUDA error: out of memory")]


@pytest.mark.parametrize("error", OUT_OF_MEMORY, ids=lambda e: type(e).__name__ + ":" + str(e)[:60])
def test_a_pass_out_of_device_memory_is_run_again_with_half_the_frames_and_later_batches_start_there(
        tmp_path, error):
    path = save_srvgg(tmp_path / "m.pth", scale=2)
    direct, model = RealESRGANModel(path, device="cpu"), RealESRGANModel(path, device="cpu")
    model.passes = StagedPasses(torch.device("cpu"))
    run_pass, sizes = model._samples_pass, []

    def two_frames_at_most(batch, *args):
        sizes.append(len(batch))
        if len(batch) > 2:
            raise error
        return run_pass(batch, *args)

    model._samples_pass = two_frames_at_most
    frames = np.random.default_rng(3).integers(0, 256, (8, 10, 14, 3)).astype(np.uint8)
    assert np.array_equal(model.upscale_samples(frames, (30, 17)), direct.upscale_samples(frames, (30, 17)))
    assert sizes == [8, 4, 2, 2, 2, 2]
    sizes.clear()
    model.upscale_samples(frames)
    assert sizes == [2, 2, 2, 2] and model.frames_per_pass(10, 14) == 2


def test_a_single_frame_out_of_device_memory_is_an_error_not_a_loop(tmp_path):
    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=2), device="cpu")

    def never_fits(batch, *args):
        raise torch.OutOfMemoryError("CUDA out of memory")

    model._samples_pass = never_fits
    with pytest.raises(torch.OutOfMemoryError):
        model.upscale_samples(np.zeros((3, 4, 4, 3), np.uint8))
    with pytest.raises(torch.OutOfMemoryError):  # a batch of one frame (a segment's last) too
        model.upscale_samples(np.zeros((1, 4, 4, 3), np.uint8))


@pytest.mark.parametrize("error", OUT_OF_MEMORY[1:2], ids=["cudnn"])
def test_float_frames_out_of_device_memory_are_run_again_in_smaller_passes_too(tmp_path, error):
    path = save_srvgg(tmp_path / "m.pth", scale=2)
    direct, model = RealESRGANModel(path, device="cpu"), RealESRGANModel(path, device="cpu")
    run_pass, sizes = model._float_pass, []

    def three_frames_at_most(batch):
        sizes.append(len(batch))
        if len(batch) > 3:
            raise error
        return run_pass(batch)

    model._float_pass = three_frames_at_most
    frames = np.random.default_rng(4).random((6, 10, 14, 3), dtype=np.float32)
    assert np.array_equal(model.upscale(frames), direct.upscale(frames))
    assert sizes == [6, 3, 3] and model.frames_per_pass(10, 14) == 3


def test_an_error_that_is_not_out_of_memory_is_raised_at_once_not_retried(tmp_path):
    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=2), device="cpu")
    calls = []

    def broken(batch, *args):
        calls.append(len(batch))
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    model._samples_pass = broken
    with pytest.raises(RuntimeError, match="illegal memory access"):
        model.upscale_samples(np.zeros((4, 4, 4, 3), np.uint8))
    assert calls == [4]


def test_frames_handed_back_are_not_the_networks_own_buffer_which_its_next_pass_overwrites(tmp_path):
    """A CUDA-graph network returns the same output memory every pass, rewritten by the next one
    while the copy of this pass's result may still be reading it."""
    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=2), device="cpu", dtype="fp32")
    forward, graph_output = model._forward, {}

    def one_output_buffer(batch):
        out = forward(batch)
        held = graph_output.setdefault(out.shape, torch.empty_like(out))
        return held.copy_(out)

    model._forward = one_output_buffer
    rng = np.random.default_rng(5)
    first_frames, second_frames = rng.random((2, 6, 8, 3), dtype=np.float32), rng.random((2, 6, 8, 3), dtype=np.float32)
    first = model.upscale(first_frames)
    kept = first.copy()
    model.upscale(second_frames)
    assert np.array_equal(first, kept)
