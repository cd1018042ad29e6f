from types import SimpleNamespace

import torch

from tmlsr_ray.models.frame_network import frame_bytes
from tmlsr_ray.models.realesrgan import ACTIVATIONS_PER_FEATURE, RealESRGANModel
from tmlsr_ray.pipeline.upscale import runs_whole


def test_whether_a_frame_runs_whole_on_a_gpu_follows_its_total_memory_not_what_is_free(tiny_model_path,
                                                                                        monkeypatch):
    """Whole or tiled followed the free GPU memory: the same request to a model that tiles badly
    gave other pixels while other work held the card."""
    model = RealESRGANModel(tiny_model_path, device="cpu")
    model._device, model.tiling = torch.device("cuda", 0), "discouraged"  # its memory facts only: nothing runs
    total = 4 * frame_bytes(16, 16, 4, ACTIVATIONS_PER_FEATURE["SRVGGNetCompact"], 4, model._num_feat)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=total))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 0)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: 0)
    answers = []
    for free in (total, 0):  # an idle card, then one that other work fills
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device, free=free: (free, total))
        answers.append((model.fits_whole(16, 16), runs_whole(model, 16, 16), model.fits_whole(64, 64)))
    assert answers == [(True, True, False)] * 2
