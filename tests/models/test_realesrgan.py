import json

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import SHARED, save_rrdbnet, save_srvgg, shared_path
from tmlsr_ray.models.base import ModelError, SuperResolutionModel
from tmlsr_ray.models.realesrgan import RealESRGANModel, detect_architecture, read_state_dict
from tmlsr_ray.pipeline.image import decode_image, probe_image
from tmlsr_ray.pipeline.upscale import SizeRequest, upscale_image


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_srvgg_architecture_and_scale_are_read_from_the_weights(tmp_path, scale):
    path = save_srvgg(tmp_path / "m.pth", num_feat=6, num_conv=3, scale=scale)
    spec = detect_architecture(read_state_dict(path))
    assert spec.kind == "SRVGGNetCompact" and spec.scale == scale
    assert spec.kwargs["num_feat"] == 6 and spec.kwargs["num_conv"] == 3


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_rrdbnet_architecture_and_scale_are_read_from_the_weights(tmp_path, scale):
    path = save_rrdbnet(tmp_path / "m.pth", scale=scale, num_block=2)
    spec = detect_architecture(read_state_dict(path))
    assert spec.kind == "RRDBNet" and spec.scale == scale and spec.kwargs["num_block"] == 2


@pytest.mark.parametrize("scale", [1, 2, 4])
def test_any_frame_size_comes_out_at_exactly_the_native_scale(tmp_path, scale):
    model = RealESRGANModel(save_rrdbnet(tmp_path / "m.pth", scale=scale), device="cpu")
    frames = np.random.default_rng(0).random((2, 13, 7, 3), dtype=np.float32)
    out = model.upscale(frames)
    assert isinstance(model, SuperResolutionModel)
    assert out.shape == (2, 13 * scale, 7 * scale, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_params_ema_is_preferred_over_params(tmp_path):
    path = tmp_path / "both.pth"
    ema = {"body.0.weight": torch.ones(1)}
    torch.save({"params": {"body.0.weight": torch.zeros(1)}, "params_ema": ema}, path)
    assert torch.equal(read_state_dict(path)["body.0.weight"], torch.ones(1))


def test_unreadable_or_unknown_files_raise_model_error(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read model file garbage.pth"):
        read_state_dict(garbage)
    unknown = tmp_path / "unknown.pth"
    torch.save({"params": {"encoder.weight": torch.zeros(2, 2)}}, unknown)
    with pytest.raises(ModelError, match="unknown architecture"):
        RealESRGANModel(unknown, device="cpu")


GOLDEN_CASES = SHARED / "golden" / "realesrgan" / "cases.json"


@pytest.mark.parametrize(
    "case",
    json.loads(GOLDEN_CASES.read_text()) if GOLDEN_CASES.exists() else [None],
    ids=lambda case: case["output"] if case else "no-golden-data",
)
def test_output_matches_the_official_realesrganer_golden_data(case):
    if case is None:
        shared_path("golden", "realesrgan", "cases.json")  # skips with the reason
    model = RealESRGANModel(shared_path("weights", case["model"]), device="cpu", half=False)
    source = shared_path("media", case["input"])
    info = probe_image(source, 10**9)
    image = decode_image(source, info)
    target = SizeRequest(outscale=case["outscale"]).output_size(info.width, info.height, model.scale)
    out = upscale_image(model, image, target)
    reference = cv2.imread(str(shared_path("golden", "realesrgan", case["output"])), cv2.IMREAD_UNCHANGED)
    assert out.shape == reference.shape == tuple(case["out_shape"])
    assert out.dtype == reference.dtype
    close = np.abs(out.astype(np.int32) - reference.astype(np.int32)) <= 1
    assert close.mean() >= 0.999, f"only {close.mean():.5f} of values within 1 grey level"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
def test_cuda_runs_fp16_on_its_own_stream_and_agrees_with_cpu(tmp_path):
    path = save_srvgg(tmp_path / "m.pth", num_feat=16, num_conv=4)
    gpu, cpu = RealESRGANModel(path, device="cuda"), RealESRGANModel(path, device="cpu")
    assert gpu.half and gpu.device.startswith("cuda") and gpu._cuda_stream is not None
    frames = np.random.default_rng(0).random((2, 32, 48, 3), dtype=np.float32)
    assert np.abs(gpu.upscale(frames) - cpu.upscale(frames)).max() < 0.02
