import json

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import SHARED, peak_memory_of, save_rrdbnet, save_srvgg, shared_path
from tmlsr_ray.models.base import ModelError, SuperResolutionModel, compile_mode
from tmlsr_ray.models.basicsr_compat import import_architectures
from tmlsr_ray.models.realesrgan import RealESRGANModel, build_network, detect_architecture, read_state_dict
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
@pytest.mark.parametrize("size", [(13, 7), (1, 1), (2, 3)])
def test_any_frame_size_comes_out_at_exactly_the_native_scale(tmp_path, scale, size):
    """x1 and x2 RRDBNet pad to a multiple of 4 and 2: a side shorter than its padding too."""
    model = RealESRGANModel(save_rrdbnet(tmp_path / "m.pth", scale=scale), device="cpu")
    frames = np.random.default_rng(0).random((2, *size, 3), dtype=np.float32)
    out = model.upscale(frames)
    assert isinstance(model, SuperResolutionModel)
    assert out.shape == (2, size[0] * scale, size[1] * scale, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_a_loaded_network_holds_exactly_the_files_weights(tmp_path, dtype):
    """The file's tensors become the network's (assigned, not copied into a network built for
    real): the same values, in the type the model runs in, with nothing left unfilled."""
    path = save_rrdbnet(tmp_path / "m.pth", num_block=2)
    saved = torch.load(path, weights_only=True)["params_ema"]
    torch.save({"params_ema": {name: tensor.to(dtype) for name, tensor in saved.items()}}, path)
    held = RealESRGANModel(path, device="cpu", dtype="fp32")._net.state_dict()
    assert sorted(held) == sorted(saved)
    for name, tensor in saved.items():
        assert held[name].dtype == torch.float32 and not held[name].is_meta, name
        assert torch.equal(held[name], tensor.to(dtype).float()), name


def test_a_model_served_from_safetensors_named_pth_keeps_its_weights_when_the_file_is_rewritten(tmp_path):
    """A .pth holding safetensors is served (its contents decide): its tensors, assigned to the
    network, were the file mapped, so its biases followed the file rewritten in place under it."""
    from safetensors.torch import save_file

    path = save_srvgg(tmp_path / "m.pth", num_feat=16)
    save_file(torch.load(path, weights_only=True)["params"], str(path))
    model = RealESRGANModel(path, device="cpu", dtype="fp32")
    frames = np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    before = model.upscale(frames)
    with open(path, "r+b") as file:
        file.seek(8 + int.from_bytes(file.read(8), "little"))  # every tensor's bytes zeroed
        file.write(bytes(path.stat().st_size - file.tell()))
    assert np.array_equal(model.upscale(frames), before)


def test_a_model_from_tensors_saved_as_views_of_one_storage_holds_each_weight_once(tmp_path):
    """A tool that saves a network's tensors as views of one flat buffer: assigned to the network,
    the biases (not converted, unlike the 4-d weights) kept the whole buffer alive beside the
    weights' converted copies, twice the weights for as long as the model was served."""
    path = save_rrdbnet(tmp_path / "m.pth", num_feat=16, num_block=2, num_grow_ch=8)
    state = torch.load(path, weights_only=True)["params_ema"]
    flat = torch.cat([tensor.reshape(-1) for tensor in state.values()])
    views = dict(zip(state, flat.split([tensor.numel() for tensor in state.values()])))
    torch.save({"params_ema": {name: views[name].view(tensor.shape) for name, tensor in state.items()}}, path)
    network = RealESRGANModel(path, device="cpu", dtype="fp32")._net
    held = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in network.parameters()}
    assert sum(held.values()) == sum(p.nbytes for p in network.parameters())


def test_a_large_model_loads_without_a_second_copy_of_its_weights(tmp_path):
    """An RRDBNet's load peaked at 2.4x its file: a randomly initialised network beside the file's
    tensors, and the file mapped while they were copied in."""
    path = save_rrdbnet(tmp_path / "m.pth", num_feat=64, num_block=12, num_grow_ch=32)
    tiny = save_rrdbnet(tmp_path / "tiny.pth")  # loaded first: imports and first-call work are not the file's
    size = path.stat().st_size
    load = "RealESRGANModel(Path({!r}), device='cpu', dtype='fp32')"
    peak = peak_memory_of(load.format(str(path)), setup="\n".join([
        "from pathlib import Path", "from tmlsr_ray.models.realesrgan import RealESRGANModel", load.format(str(tiny))]))
    assert peak < 1.3 * size, f"peak {peak / 2**20:.0f} MiB for a file of {size / 2**20:.0f} MiB"


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
    model = RealESRGANModel(shared_path("weights", case["model"]), device="cpu", dtype="fp32")
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


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535)])
@pytest.mark.parametrize("kind", ["srvgg", "rrdb"])
def test_integer_frames_in_and_out_equal_rounding_the_float_path(tmp_path, dtype, top, kind):
    path = (save_srvgg if kind == "srvgg" else save_rrdbnet)(tmp_path / "m.pth", scale=2)
    model = RealESRGANModel(path, device="cpu")
    frames = np.random.default_rng(1).integers(0, top + 1, (3, 10, 14, 3)).astype(dtype)
    expected = (model.upscale(frames.astype(np.float32) / np.float32(top)) * np.float32(top)).round()
    out = model.upscale_samples(frames)
    assert out.dtype == dtype and out.shape == (3, 20, 28, 3)
    assert np.array_equal(out, expected.astype(dtype))


def test_frames_per_pass_follow_the_memory_and_the_architecture(tmp_path, monkeypatch):
    from tmlsr_ray.models import frame_network

    gib = 1024**3
    compact_path, rrdb_path = save_srvgg(tmp_path / "c.pth", num_feat=64), save_rrdbnet(tmp_path / "r.pth")

    def frames(path, memory: int) -> int:
        monkeypatch.setattr(frame_network, "host_memory_bytes", lambda: memory)
        return RealESRGANModel(path, device="cpu").frames_per_pass(720, 1280)

    small = frames(compact_path, 16 * gib)
    assert small >= 2 and frames(compact_path, 32 * gib) in range(2 * small, 2 * small + 3)
    assert frames(rrdb_path, 32 * gib) < frames(compact_path, 32 * gib)
    assert frames(rrdb_path, 1) == 1  # never zero


def test_a_whole_frame_fits_by_the_same_estimate_and_never_on_a_cpu(tiny_model_path):
    from tmlsr_ray.models.frame_network import frame_bytes
    from tmlsr_ray.models.realesrgan import ACTIVATIONS_PER_FEATURE

    gib = 1024**3
    assert frame_bytes(1080, 1920, 4, ACTIVATIONS_PER_FEATURE["SRVGGNetCompact"], 2) < 2 * gib  # 1080p runs whole
    assert frame_bytes(2160, 3840, 4, ACTIVATIONS_PER_FEATURE["RRDBNet"], 2) > 30 * gib  # 4K RRDBNet: tiles
    assert not RealESRGANModel(tiny_model_path, device="cpu").fits_whole(1080, 1920)  # a CPU keeps the tiling rule


def test_a_cpus_passes_and_whole_frames_follow_its_total_memory(tiny_model_path, monkeypatch):
    """A CPU pass took every frame of a batch however large (a model run whole over the tiling
    threshold took them all at once): it takes those that fit half the host's memory by the
    activation estimate, as a GPU's pass does its free memory."""
    from types import SimpleNamespace

    from tmlsr_ray.models import device, frame_network

    model = RealESRGANModel(tiny_model_path, device="cpu")
    monkeypatch.setattr(frame_network, "CPU_PASS_FIXED_BYTES", 0)  # a host of a few frames' memory
    one_frame = model._pass_bytes(16, 16, 1)
    monkeypatch.setattr(device.psutil, "virtual_memory", lambda: SimpleNamespace(total=7 * one_frame, available=0))
    assert model.frames_per_pass(16, 16) == 3 and model.fits_in_memory(16, 16)
    assert not model.fits_in_memory(64, 64) and not model.fits_whole(16, 16)  # whole on a CPU: the tiling rule


def test_a_cpu_in_a_memory_limited_container_sizes_its_passes_to_the_limit(tiny_model_path, monkeypatch, tmp_path):
    """psutil gives the host's memory inside a container: a pod of a few GiB on a large host sized
    its passes, and whole frames, to the host and was killed."""
    from tmlsr_ray.models import device, frame_network

    model = RealESRGANModel(tiny_model_path, device="cpu")
    monkeypatch.setattr(frame_network, "CPU_PASS_FIXED_BYTES", 0)  # a host of a few frames' memory
    one_frame = model._pass_bytes(16, 16, 1)
    (tmp_path / "sys" / "fs" / "cgroup").mkdir(parents=True)
    (tmp_path / "sys" / "fs" / "cgroup" / "memory.max").write_text(f"{7 * one_frame}\n")
    monkeypatch.setattr(frame_network, "host_memory_bytes", lambda: device.host_memory_bytes(tmp_path))
    assert model.frames_per_pass(16, 16) == 3 and not model.fits_in_memory(64, 64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
def test_cuda_converts_integer_frames_on_the_device_and_splits_batches_by_free_memory(tmp_path):
    path = save_srvgg(tmp_path / "m.pth", num_feat=16, num_conv=4)
    gpu, cpu = RealESRGANModel(path, device="cuda", dtype="fp32"), RealESRGANModel(path, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (5, 24, 40, 3)).astype(np.uint8)
    assert gpu.frames_per_pass(24, 40) >= 1 and gpu.fits_whole(1080, 1920)
    assert np.abs(gpu.upscale_samples(frames).astype(int) - cpu.upscale_samples(frames).astype(int)).max() <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
def test_cuda_takes_the_decoders_planes_and_makes_them_rgb_there(tmp_path):
    from tmlsr_ray.models.yuv import SITINGS, Yuv420, Yuv420Frames, rgb_to_yuv420
    from tmlsr_ray.pipeline.upscale import takes_planes

    path = save_srvgg(tmp_path / "m.pth", num_feat=16, num_conv=4)
    gpu, cpu = RealESRGANModel(path, device="cuda", dtype="fp32"), RealESRGANModel(path, device="cpu")
    rgb = np.random.default_rng(0).integers(0, 256, (5, 24, 40, 3)).astype(np.uint8)
    planes = rgb_to_yuv420(torch.from_numpy(rgb).permute(0, 3, 1, 2), 255.0, Yuv420("ITU709")).numpy()
    frames = Yuv420Frames(planes, Yuv420("ITU709"), 1, SITINGS["left"])
    assert takes_planes(gpu, *frames.size) and not takes_planes(cpu, *frames.size)
    got, expected = gpu.upscale_samples(frames, (48, 80)), cpu.upscale_samples(frames, (48, 80))
    assert got.shape == expected.shape == (5, 80, 48, 3)
    assert (np.abs(got.astype(int) - expected.astype(int)) <= 1).mean() >= 0.999


def test_a_compiled_network_gives_the_same_frames_at_any_size(tmp_path):
    path = save_srvgg(tmp_path / "m.pth")
    plain, compiled = RealESRGANModel(path, device="cpu"), RealESRGANModel(path, device="cpu", compile=True)
    assert compiled.compiled and compiled.compile_mode == "default" and not plain.compiled
    for shape in [(2, 16, 24, 3), (1, 20, 30, 3)]:  # a second size reuses the dynamic graph
        frames = np.random.default_rng(0).random(shape, dtype=np.float32)
        assert np.abs(compiled.upscale(frames) - plain.upscale(frames)).max() < 1e-5
    # Each input shape's first call is timed (the compilation, when one happens), once.
    assert sorted(shape for shape, _ in compiled.compile_seconds) == [(1, 3, 20, 30), (2, 3, 16, 24)]
    assert plain.compile_seconds == {}


def test_a_shape_specialised_compile_pads_a_shorter_pass_instead_of_compiling_it_again(tmp_path):
    path = save_srvgg(tmp_path / "m.pth")
    plain, compiled = RealESRGANModel(path, device="cpu"), RealESRGANModel(path, device="cpu", compile="reduce-overhead")
    rng = np.random.default_rng(0)
    for frames in [rng.random((3, 12, 16, 3), dtype=np.float32), rng.random((1, 12, 16, 3), dtype=np.float32)]:
        out = compiled.upscale(frames)
        assert out.shape == (len(frames), 48, 64, 3) and np.abs(out - plain.upscale(frames)).max() < 1e-5
    assert sorted(shape for shape, _ in compiled.compile_seconds) == [(3, 3, 12, 16)]


def test_compile_modes_are_named_or_given_as_booleans():
    assert [compile_mode(v) for v in (True, False, "true", "False", "reduce-overhead")] == [
        "default", "off", "default", "off", "reduce-overhead"]
    with pytest.raises(ValueError, match="none of off, default, reduce-overhead, max-autotune"):
        compile_mode("fast")


@pytest.mark.parametrize("dtype,expected", [("auto", torch.float32), ("fp32", torch.float32),
                                            ("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_the_model_runs_in_the_number_type_it_is_given_and_fp32_on_a_cpu_by_default(tmp_path, dtype, expected):
    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=2), device="cpu", dtype=dtype)
    assert model.dtype == str(expected).removeprefix("torch.")
    frames = np.random.default_rng(0).integers(0, 256, (1, 6, 8, 3)).astype(np.uint8)
    assert model.upscale_samples(frames).shape == (1, 12, 16, 3)


def test_near_white_16_bit_frames_survive_half_precision(tmp_path):
    path = save_srvgg(tmp_path / "m.pth", weight_scale=0.05)
    half, full = RealESRGANModel(path, device="cpu", dtype="fp16"), RealESRGANModel(path, device="cpu")
    frames = np.full((1, 8, 8, 3), 65535, np.uint16)
    frames[:, :, :4] = 30000
    out, reference = half.upscale_samples(frames).astype(int), full.upscale_samples(frames).astype(int)
    assert np.abs(out - reference).max() < 0.01 * 65535 and out.max() > 0


def general_pair(folder):
    """Tiny networks named as Real-ESRGAN's general model and its weak-denoise twin."""
    model = save_srvgg(folder / "realesr-general-x4v3.pth", seed=1)
    save_srvgg(folder / "realesr-general-wdn-x4v3.pth", seed=2)
    return model


@pytest.mark.parametrize("strength", [0.0, 0.3, 1.0])
def test_a_denoise_strength_mixes_the_general_model_with_its_twin_as_realesrganer_does(tmp_path, strength):
    import_architectures()  # basicsr's import shim, before realesrgan's
    from realesrgan import RealESRGANer

    path = general_pair(tmp_path)
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    ours = upscale_image(RealESRGANModel(path, device="cpu", dtype="fp32", denoise=strength), image, (128, 96))
    official = RealESRGANer(scale=4, model_path=[str(path), str(tmp_path / "realesr-general-wdn-x4v3.pth")],
                            dni_weight=[strength, 1 - strength],
                            model=build_network(detect_architecture(read_state_dict(path))), tile=0, pre_pad=0,
                            half=False, device="cpu")
    reference, _ = official.enhance(image, outscale=4)  # both take OpenCV's channel order
    assert np.abs(ours.astype(np.int32) - reference.astype(np.int32)).max() <= 1


def test_a_denoise_strength_needs_the_twin_beside_the_model_and_of_its_network(tmp_path):
    path = save_srvgg(tmp_path / "realesr-general-x4v3.pth")
    with pytest.raises(ModelError, match="no weak-denoise twin beside it"):
        RealESRGANModel(path, device="cpu", denoise=0.5)
    save_srvgg(tmp_path / "realesr-general-wdn-x4v3.pth", num_feat=16)
    with pytest.raises(ModelError, match="are not the same network"):
        RealESRGANModel(path, device="cpu", denoise=0.5)


def test_a_weak_denoise_twin_of_the_same_architecture_but_other_layers_is_told_apart_at_recognition(tmp_path):
    """What the service checks at submission: a Compact network of other widths or depths named
    as the twin (realesr-animevideov3 copied over it) is not the general model's network."""
    from tmlsr_ray.models.realesrgan import twin_mismatch
    from tmlsr_ray.models.registry import ModelCatalog

    general_pair(tmp_path)
    catalog = ModelCatalog(tmp_path)
    model = catalog.info("realesr-general-x4v3.pth")
    assert twin_mismatch(model, catalog.info("realesr-general-wdn-x4v3.pth")) is None
    save_srvgg(tmp_path / "realesr-general-wdn-x4v3.pth", num_conv=3)
    refusal = twin_mismatch(model, catalog.info("realesr-general-wdn-x4v3.pth"))
    assert refusal and "num_conv 3" in refusal and "num_conv 2" in refusal and "cannot be mixed" in refusal, refusal


def test_the_catalog_says_which_models_take_a_denoise_strength_with_the_reason_of_those_that_do_not(tmp_path):
    """What GET /models lists and submission refuses with: GET /models said of no model that it takes one."""
    from tests.helpers import save_spandrel_model
    from tmlsr_ray.models.registry import ModelCatalog

    general_pair(tmp_path)
    save_srvgg(tmp_path / "deep-realesr-general-x4v3.pth", num_conv=3)
    save_srvgg(tmp_path / "deep-realesr-general-wdn-x4v3.pth")
    save_spandrel_model("SPAN", tmp_path / "span.pth")
    catalog = ModelCatalog(tmp_path)
    refusals = {entry.name: catalog.denoise_refusal(entry.name, entry.info) for entry in catalog.entries()}
    assert refusals["realesr-general-x4v3.pth"] is None
    assert "cannot be mixed" in refusals["deep-realesr-general-x4v3.pth"]
    assert refusals["realesr-general-wdn-x4v3.pth"].startswith("model realesr-general-wdn-x4v3.pth has no weak-denoise twin")
    assert refusals["span.pth"].startswith("model span.pth is served as spandrel (SPAN), which takes no denoise strength")
    save_spandrel_model("SPAN", tmp_path / "realesr-general-x4v3.pth")  # the name alone: it said "no twin" with one beside it
    refusal = catalog.denoise_refusal("realesr-general-x4v3.pth", catalog.info("realesr-general-x4v3.pth"))
    assert "served as spandrel (SPAN), which takes no denoise strength" in refusal, refusal
    general_pair(tmp_path)
    (tmp_path / "realesr-general-wdn-x4v3.pth").write_bytes(b"broken")
    assert "cannot read model file realesr-general-wdn-x4v3.pth" in catalog.denoise_refusal(
        "realesr-general-x4v3.pth", catalog.info("realesr-general-x4v3.pth"))
