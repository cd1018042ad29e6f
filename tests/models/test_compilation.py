import numpy as np
import torch

from tests.helpers import save_srvgg
from tmlsr_ray.models.realesrgan import RealESRGANModel


def test_a_pass_halved_after_running_out_of_memory_is_not_padded_back_to_the_count_that_ran_out(tmp_path):
    """A shape-specialised compile pads a shorter pass to the most frames compiled at its size:
    once 4 frames ran out of memory, the halved passes of 2 and 1 were padded back to 4, ran
    out again, and the batch failed (a whole frame then tiled with seams)."""
    path = save_srvgg(tmp_path / "m.pth")
    plain, compiled = RealESRGANModel(path, device="cpu"), RealESRGANModel(path, device="cpu", compile="reduce-overhead")
    full_device, counts = [], []

    def network(batch):  # the eager network: what matters is the count each pass gets
        counts.append(len(batch))
        if full_device and len(batch) >= 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return plain._net(batch)

    compiled._net._compiled = network
    frames = np.random.default_rng(0).random((4, 12, 16, 3), dtype=np.float32)
    compiled.upscale(frames)  # compiled at 4 frames
    full_device.append(True)
    out = compiled.upscale(frames)
    assert counts == [4, 4, 2, 2] and np.array_equal(out, plain.upscale(frames))


def test_once_a_halved_pass_grows_again_a_short_pass_is_padded_back_to_the_count_that_ran_out(tmp_path,
                                                                                               monkeypatch):
    """The counts that ran out of memory were never padded to again, while the model came to try
    them again (on CUDA, after passes that worked at the halved count): each shorter pass of that
    size then compiled a graph of its own."""
    path = save_srvgg(tmp_path / "m.pth")
    plain, compiled = RealESRGANModel(path, device="cpu"), RealESRGANModel(path, device="cpu", compile="reduce-overhead")
    compiled._device, compiled.passes_before_retry = torch.device("cuda", 0), 2  # its memory facts only
    for name, value in {"mem_get_info": (1 << 40, 1 << 40), "memory_reserved": 0, "memory_allocated": 0}.items():
        monkeypatch.setattr(torch.cuda, name, lambda device, value=value: value)
    full_device, counts = [True], []

    def network(batch):
        counts.append(len(batch))
        if full_device and len(batch) >= 4 and len(counts) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return plain._net(batch)

    compiled._net._compiled = network
    frames = np.random.default_rng(0).random((4, 12, 16, 3), dtype=np.float32)
    compiled.upscale(frames)  # compiled at 4 frames
    compiled.upscale(frames)  # 4 runs out: two passes of 2 work, and 4 is tried again
    full_device.clear()
    counts.clear()
    out = compiled.upscale(frames[:3])
    assert counts == [4] and np.array_equal(out, plain.upscale(frames[:3]))
