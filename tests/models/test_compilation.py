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
