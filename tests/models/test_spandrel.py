"""Community architectures through spandrel: recognised by their tensors, run through the batched
device path at the right size, refused with a reason when a whole-frame upscaler cannot serve them."""

import numpy as np
import pytest
import torch

from tests.helpers import (SPANDREL_ARCHS, SPANDREL_ONE_IMAGE_ARCHS, SPANDREL_TILING_DISCOURAGED_ARCHS, peak_memory_of,
                           save_face_model, save_rrdbnet, save_spandrel_model, save_state, save_unshuffle_swinir)
from tmlsr_ray.models import spandrel as spandrel_backend
from tmlsr_ray.models.base import LoadOptions, ModelError, TilingAdvice
from tmlsr_ray.models.realesrgan import RealESRGANModel
from tmlsr_ray.models.registry import ModelCatalog, load_model
from tmlsr_ray.pipeline.upscale import Tiling, upscale_frames, upscale_image


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("arch", SPANDREL_ARCHS)
def test_each_architecture_is_recognised_and_upscales_frames_and_tiled_images(tmp_path, arch, scale):
    save_spandrel_model(arch, tmp_path / "m.pth", scale=scale)
    info = ModelCatalog(tmp_path).info("m.pth")
    assert (info.family, info.architecture, info.scale, info.replica_kind) == ("spandrel", arch, scale, "upscaler")
    model = load_model(tmp_path / "m.pth", info, LoadOptions("cpu"))
    frames = np.random.default_rng(0).integers(0, 256, (3, 18, 26, 3), dtype=np.uint8)
    out = upscale_frames(model, frames, (26 * scale, 18 * scale), Tiling())
    assert out.shape == (3, 18 * scale, 26 * scale, 3) and out.dtype == np.uint8
    image = np.random.default_rng(1).integers(0, 256, (30, 41, 4), dtype=np.uint8)  # BGRA, tiled
    tiled = upscale_image(model, image, (82, 60), Tiling(tile_size=16, tile_pad=4, min_pixels=100))
    assert tiled.shape == (60, 82, 4)


def test_the_batched_path_equals_spandrels_own_call(tmp_path):
    import spandrel

    save_spandrel_model("SwinIR", tmp_path / "m.pth")
    model = load_model(tmp_path / "m.pth", ModelCatalog(tmp_path).info("m.pth"), LoadOptions("cpu"))
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / "m.pth").eval()
    frames = np.random.default_rng(0).random((2, 18, 26, 3), dtype=np.float32)  # not a window multiple: padded
    ours = model.upscale(frames)
    theirs = torch.cat([descriptor(torch.from_numpy(f).permute(2, 0, 1)[None]) for f in frames])
    assert np.abs(ours - theirs.permute(0, 2, 3, 1).numpy()).max() < 1e-5


@pytest.mark.parametrize("arch", SPANDREL_ONE_IMAGE_ARCHS)
def test_an_architecture_spandrel_runs_image_by_image_takes_video_batches_and_rgba_images(tmp_path, arch):
    """Their spandrel call fails on a batch (a noise map for one image, a patch chopper, expert
    routing): a video's frames and an RGBA image's colour and alpha come as one."""
    import spandrel

    save_spandrel_model(arch, tmp_path / "m.pth")
    model = load_model(tmp_path / "m.pth", ModelCatalog(tmp_path).info("m.pth"), LoadOptions("cpu"))
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / "m.pth").eval()
    frames = np.random.default_rng(0).integers(0, 256, (3, 18, 26, 3), dtype=np.uint8)
    size = (26 * model.scale, 18 * model.scale)
    out = upscale_frames(model, frames, size, Tiling())
    with torch.inference_mode():
        theirs = torch.cat([descriptor(torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255) for f in frames])
    assert np.abs(out - (theirs.permute(0, 2, 3, 1).numpy() * 255).round()).max() <= 1
    image = np.random.default_rng(1).integers(0, 256, (18, 26, 4), dtype=np.uint8)
    assert upscale_image(model, image, size).shape == (size[1], size[0], 4)


def test_an_aurasr_gives_one_output_for_one_frame_wherever_and_whenever_it_runs(tmp_path):
    """AuraSR draws a style and an input noise on every call: the same frame came out different
    in each place of a batch and in each call (a video flickered, a retried task changed)."""
    save_spandrel_model("AuraSR", tmp_path / "m.pth")
    model = load_model(tmp_path / "m.pth", ModelCatalog(tmp_path).info("m.pth"), LoadOptions("cpu"))
    frame, other = np.random.default_rng(0).integers(0, 256, (2, 1, 16, 16, 3), dtype=np.uint8)
    generator_state = torch.get_rng_state()
    batch = model.upscale_samples(np.concatenate([frame, other, frame]))
    alone = model.upscale_samples(frame)
    assert batch.shape == (3, 64, 64, 3)
    assert np.array_equal(batch[0], batch[2]) and np.array_equal(batch[0], alone[0])
    assert torch.equal(torch.get_rng_state(), generator_state)


@pytest.mark.parametrize("arch", SPANDREL_TILING_DISCOURAGED_ARCHS)
def test_an_architecture_spandrel_discourages_tiling_runs_images_and_frames_over_the_tiling_threshold_whole(tmp_path,
                                                                                                         arch):
    """It draws on the whole image, so tiles show at their seams: an image or a video's frames over
    ``tile_min_pixels`` went in tiles on a CPU like any other model's."""
    save_spandrel_model(arch, tmp_path / "m.pth")
    model = load_model(tmp_path / "m.pth", ModelCatalog(tmp_path).info("m.pth"), LoadOptions("cpu"))
    seen = []
    forward = model._forward
    model._forward = lambda batch: seen.append(tuple(batch.shape)) or forward(batch)
    tiling, size = Tiling(tile_size=16, tile_pad=4, min_pixels=100), (64 * model.scale, 48 * model.scale)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    assert upscale_image(model, image, size, tiling).shape == (size[1], size[0], 3)
    frames = np.random.default_rng(1).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    assert np.array_equal(upscale_frames(model, frames, size, tiling), model.upscale_samples(frames))
    assert seen[:2] == [(1, 3, 48, 64), (2, 3, 48, 64)]
    assert model.tiling is TilingAdvice.DISCOURAGED


def test_a_cpu_runs_a_model_that_discourages_tiling_alike_on_a_busy_and_an_idle_host(tmp_path, monkeypatch):
    """Whether a frame ran whole and how many frames shared a pass followed the host's available
    memory, so a busy host tiled a SwinIR's image (seams) and split its frames otherwise (its
    batched products round by batch): a user got another output under load."""
    from types import SimpleNamespace

    from tmlsr_ray.models import device, frame_network

    save_spandrel_model("SwinIR", tmp_path / "m.pth")
    model = load_model(tmp_path / "m.pth", ModelCatalog(tmp_path).info("m.pth"), LoadOptions("cpu"))
    tiling, size = Tiling(tile_size=16, tile_pad=4, min_pixels=100), (128, 96)
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = np.random.default_rng(1).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    outputs = []
    monkeypatch.setattr(frame_network, "host_memory_bytes", lambda: device.host_memory_bytes(tmp_path))  # no cgroup
    for available in (1 << 36, 1 << 20):  # idle, then busy: 1 MiB left of the same 64 GiB
        monkeypatch.setattr(device.psutil, "virtual_memory",
                            lambda available=available: SimpleNamespace(total=1 << 36, available=available))
        outputs.append((upscale_image(model, image, size, tiling), upscale_frames(model, frames, size, tiling),
                        model.frames_per_pass(48, 64)))
    (idle_image, idle_frames, idle_pass), (busy_image, busy_frames, busy_pass) = outputs
    assert np.array_equal(busy_image, idle_image) and np.array_equal(busy_frames, idle_frames)
    assert busy_pass == idle_pass >= 4


def test_safetensors_and_pth_of_one_network_are_the_same_model(tmp_path):
    save_spandrel_model("SPAN", tmp_path / "a.pth")
    save_spandrel_model("SPAN", tmp_path / "a.safetensors")
    catalog = ModelCatalog(tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (1, 12, 16, 3), dtype=np.uint8)
    outs = [load_model(tmp_path / n, catalog.info(n), LoadOptions("cpu")).upscale_samples(frames)
            for n in ("a.pth", "a.safetensors")]
    assert np.array_equal(*outs)


def test_a_one_channel_model_gets_luma_and_gives_gray_rgb(tmp_path):
    torch.manual_seed(0)
    from spandrel.architectures.Compact import Compact

    torch.save(Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=2).state_dict(), tmp_path / "g.pth")
    info = ModelCatalog(tmp_path).info("g.pth")
    assert (info.family, info.channels) == ("spandrel", (1, 1))
    out = load_model(tmp_path / "g.pth", info, LoadOptions("cpu")).upscale_samples(
        np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8))
    assert out.shape == (1, 16, 16, 3) and np.array_equal(out[..., 0], out[..., 2])


RGB_ONLY_NETWORKS = {  # spandrel loads them with 1 or 4 channels, and cannot run them so
    "SPAN": ("SPAN", dict(num_in_ch=1, num_out_ch=1, feature_channels=8, upscale=2)),
    "SeemoRe": ("SeemoRe", dict(in_chans=4, scale=2, num_experts=2, num_layers=1, embedding_dim=8)),
    "RCAN": ("RCAN", dict(n_colors=1, scale=2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=4)),
    "MixDehazeNet": ("MixDehazeNet", dict(in_chans=1, out_chans=2, embed_dims=[8] * 5, depths=[1] * 5)),
    "RetinexFormer": ("RetinexFormer", dict(in_channels=1, out_channels=1, n_feat=8, stage=1)),
}


@pytest.mark.parametrize("arch", RGB_ONLY_NETWORKS)
def test_a_network_of_1_or_4_channels_which_spandrel_runs_on_rgb_only_is_refused_with_the_reason(tmp_path, arch):
    import importlib

    module, hyperparameters = RGB_ONLY_NETWORKS[arch]
    network = getattr(importlib.import_module(f"spandrel.architectures.{module}"), module)(**hyperparameters)
    torch.save(network.state_dict(), tmp_path / "g.pth")
    with pytest.raises(ModelError, match=rf"g.pth \({arch}\) takes [14] channels, which spandrel's {arch} cannot run \(."):
        ModelCatalog(tmp_path).info("g.pth")


def test_a_one_channel_rcan_without_its_rgb_mean_shift_is_served(tmp_path):
    from spandrel.architectures.RCAN import RCAN

    network = RCAN(n_colors=1, norm=False, scale=2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=4)
    torch.save(network.state_dict(), tmp_path / "g.pth")
    info = ModelCatalog(tmp_path).info("g.pth")
    out = load_model(tmp_path / "g.pth", info, LoadOptions("cpu")).upscale_samples(np.zeros((2, 5, 7, 3), np.uint8))
    assert info.channels == (1, 1) and out.shape == (2, 10, 14, 3)


@pytest.mark.parametrize("scale", [1, 2])
def test_an_mmrealsr_below_x4_which_spandrel_cannot_run_is_refused_with_the_reason(tmp_path, scale):
    import spandrel
    from spandrel.architectures.MMRealSR import MMRealSR

    network = MMRealSR(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=8, num_block=1, num_grow_ch=4,
                       num_feats=[8] * 4, num_blocks=[1] * 4)
    torch.save(network.state_dict(), tmp_path / "m.pth")
    with pytest.raises(RuntimeError, match="expected input.* to have"):  # spandrel's own call
        spandrel.ModelLoader().load_from_file(tmp_path / "m.pth")(torch.rand(1, 3, 16, 16))
    with pytest.raises(ModelError, match=rf"m.pth \(MMRealSR\) scales ×{scale}, which spandrel's MMRealSR cannot run"):
        ModelCatalog(tmp_path).info("m.pth")


def test_a_uformer_which_spandrel_runs_on_square_inputs_only_is_refused_with_the_reason(tmp_path):
    from spandrel.architectures.Uformer import Uformer

    torch.save(Uformer(embed_dim=4, depths=[1] * 9, num_heads=[1] * 9, win_size=4).state_dict(), tmp_path / "u.pth")
    with pytest.raises(ModelError, match=r"u.pth \(Uformer\) needs square inputs"):
        ModelCatalog(tmp_path).info("u.pth")


def test_a_network_that_does_not_load_is_refused_in_one_short_line(tmp_path):
    """An RRDBNet of 4 growth channels, which spandrel rebuilds with 32: torch lists each of its
    30 tensors that does not fit, a line each, which the listing's error carried whole."""
    from safetensors.torch import save_file

    save_file(torch.load(save_rrdbnet(tmp_path / "lite.pth"))["params_ema"], str(tmp_path / "lite.safetensors"))
    with pytest.raises(ModelError) as refused:
        ModelCatalog(tmp_path).info("lite.safetensors")
    message = str(refused.value)
    assert message.startswith("model file lite.safetensors (ESRGAN) does not load: RuntimeError: Error(s) in loading")
    assert "size mismatch for" in message and "\n" not in message and len(message) <= 400


def test_face_restoration_unknown_and_unreadable_files_are_refused_with_the_reason(tmp_path):
    save_face_model(tmp_path / "face.pth")
    torch.save({"some.weight": torch.zeros(2, 2)}, tmp_path / "unknown.pth")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 16)
    catalog = ModelCatalog(tmp_path)
    with pytest.raises(ModelError, match=r"face.pth is a face-restoration model.*\(GFPGAN\)"):
        catalog.info("face.pth")
    with pytest.raises(ModelError, match="unknown.pth: no architecture spandrel .* knows"):
        catalog.info("unknown.pth")
    with pytest.raises(ModelError, match="cannot read model file broken.safetensors"):
        catalog.info("broken.safetensors")


def test_a_half_type_an_architecture_does_not_hold_is_never_used(tmp_path):
    from tmlsr_ray.models.device import select_dtype
    from tmlsr_ray.models.spandrel import held_dtypes

    class Descriptor:
        supports_half, supports_bfloat16 = False, True

    held, cuda, cpu = held_dtypes(Descriptor), torch.device("cuda"), torch.device("cpu")
    assert select_dtype("auto", cuda, held, "X") == torch.bfloat16
    assert select_dtype("fp16", cuda, held, "X") == torch.float32
    assert select_dtype("auto", cpu, held, "X") == torch.float32


@pytest.mark.parametrize("arch,minimum", [("HAT", 16), ("RealCUGAN", 32), ("ESRGAN", 2), ("SPAN", None)])
def test_the_shortest_side_an_architecture_runs_on_is_listed_and_a_smaller_image_is_padded_to_it(tmp_path, arch,
                                                                                                 minimum):
    """spandrel's size_requirements.minimum, which GET /models did not show; spandrel pads a smaller input."""
    save_spandrel_model(arch, tmp_path / "m.pth")
    info = ModelCatalog(tmp_path).info("m.pth")
    assert (info.minimum, info.public()["minimum"]) == (minimum, minimum)
    model = load_model(tmp_path / "m.pth", info, LoadOptions("cpu"))
    image = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    assert upscale_image(model, image, (10, 6)).shape == (6, 10, 3)


def test_a_swinir_runs_in_bfloat16_at_frame_sizes_other_than_its_training_size(tmp_path):
    """SwinIR holds bf16 (a GPU's auto choice for it), but spandrel computes the attention mask of
    a size other than its training size in fp32: every bf16 SwinIR task failed ("expected m1 and
    m2 to have the same dtype, but got: float != c10::BFloat16")."""
    save_spandrel_model("SwinIR", tmp_path / "m.pth")
    info = ModelCatalog(tmp_path).info("m.pth")
    frames = np.random.default_rng(0).integers(0, 256, (2, 18, 26, 3), dtype=np.uint8)
    in_fp32, in_bf16 = (load_model(tmp_path / "m.pth", info, LoadOptions("cpu", dtype=dtype)).upscale_samples(frames)
                        for dtype in ("fp32", "bf16"))
    assert np.abs(in_bf16.astype(int) - in_fp32).mean() < 2


def test_a_pixel_unshuffle_swinir_upscales_frames_of_sides_its_windows_do_not_divide_once_unshuffled(tmp_path):
    """spandrel's size rule for such a SwinIR (window 4, unshuffled by 2) said multiples of 4, and
    its network pads to its window before the unshuffle: an 18x26, 20x28 or odd-sided frame failed
    in spandrel's own call ("shape ... is invalid for input of size ...")."""
    info = ModelCatalog(tmp_path).info(save_unshuffle_swinir(tmp_path / "m.pth").name)
    model = load_model(tmp_path / "m.pth", info, LoadOptions("cpu"))
    assert info.size_multiple == 8
    for height, width in ((18, 26), (20, 28), (17, 23), (16, 24)):
        frames = np.random.default_rng(0).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
        assert model.upscale_samples(frames).shape == (2, 2 * height, 2 * width, 3)


UNSHUFFLE_NETWORKS = {  # ×1 and ×2 files of ×4 networks that pixel-unshuffle their input by 4 / 2
    "RCAN": lambda scale: dict(scale=scale, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=4),
    "FDAT": lambda scale: dict(scale=scale, embed_dim=16, num_groups=1, depth_per_group=1, num_heads=2,
                               window_size=4, mid_dim=8),
}


@pytest.mark.parametrize("scale", [1, 2])
@pytest.mark.parametrize("arch", UNSHUFFLE_NETWORKS)
def test_a_pixel_unshuffle_rcan_or_fdat_upscales_frames_of_any_size_padded_to_its_unshuffles_multiple(tmp_path, arch,
                                                                                                      scale):
    """Their networks reflect their input up to the unshuffle's multiple, and spandrel stated no
    size rule: an odd-sided frame ran, one with a side no longer than the padding (a ×1's 1x7
    or 3x2) failed ("Padding size should be less than the corresponding input dimension")."""
    import importlib

    network = getattr(importlib.import_module(f"spandrel.architectures.{arch}"), arch)
    torch.manual_seed(0)
    save_state(network(unshuffle_mod=True, **UNSHUFFLE_NETWORKS[arch](scale)).state_dict(), tmp_path / "m.pth")
    info = ModelCatalog(tmp_path).info("m.pth")
    model = load_model(tmp_path / "m.pth", info, LoadOptions("cpu"))
    assert (info.architecture, info.scale, info.size_multiple) == (arch, scale, 4 // scale)
    for height, width in ((23, 37), (37, 23), (3, 2), (1, 7), (1, 1)):
        frames = np.random.default_rng(0).integers(0, 256, (2, height, width, 3), dtype=np.uint8)
        assert model.upscale_samples(frames).shape == (2, scale * height, scale * width, 3)


# The tiny network of each architecture whose file's tensors become its network's weights.
ASSIGNED_ARCHITECTURE_NETWORKS = {"Compact": "Compact", "DnCNN": "FDnCNN", **{arch: arch for arch in (
    "ESRGAN", "SwinIR", "HAT", "DAT", "OmniSR", "SPAN", "RealCUGAN", "PLKSR", "DRUNet", "SeemoRe", "AuraSR", "IPT")}}


@pytest.mark.parametrize("arch", sorted(spandrel_backend.WEIGHTS_ASSIGNED_ARCHITECTURES))
def test_a_network_given_its_files_tensors_as_weights_upscales_as_one_built_for_real(tmp_path, monkeypatch, arch):
    """Built on the meta device, a network has buffers its file may not hold (OmniSR's, computed
    by its constructor) and gets the file's tensors as they are: a wrong buffer gives a wrong picture."""
    save_spandrel_model(ASSIGNED_ARCHITECTURE_NETWORKS[arch], tmp_path / "m.safetensors", scale=4)
    assigned, built_for_real = _upscaled_with_weights_assigned_and_built_for_real(tmp_path / "m.safetensors",
                                                                                  monkeypatch)
    assert np.array_equal(assigned, built_for_real)


def test_a_pixel_unshuffle_swinir_whose_keys_its_loader_renames_is_given_its_files_tensors(tmp_path, monkeypatch):
    assigned, built_for_real = _upscaled_with_weights_assigned_and_built_for_real(
        save_unshuffle_swinir(tmp_path / "m.pth"), monkeypatch)
    assert np.array_equal(assigned, built_for_real)


def _upscaled_with_weights_assigned_and_built_for_real(path, monkeypatch):
    """Frames upscaled by the file's model given its tensors as weights (checked to be), and by
    the model built for real."""
    info = ModelCatalog(path.parent).info(path.name)
    assigned = []
    with_weights_assigned = spandrel_backend._with_weights_assigned
    monkeypatch.setattr(spandrel_backend, "_with_weights_assigned",
                        lambda *args: assigned.append(with_weights_assigned(*args)) or assigned[-1])
    frames = np.random.default_rng(0).integers(0, 256, (2, 18, 26, 3), dtype=np.uint8)
    outputs = [load_model(path, info, LoadOptions("cpu")).upscale_samples(frames)]
    assert len(assigned) == 1 and assigned[0] is not None
    monkeypatch.setattr(spandrel_backend, "WEIGHTS_ASSIGNED_ARCHITECTURES", set())
    outputs.append(load_model(path, info, LoadOptions("cpu")).upscale_samples(frames))
    assert len(assigned) == 1
    return outputs


def test_a_file_whose_keys_spandrel_renames_into_a_dict_of_its_own_is_built_for_real(tmp_path):
    """spandrel's ESRGAN loader reads Real-ESRGAN's layout into a dict of its own (the older
    layout): the network checked on meta got none of the file's tensors, and is built for real."""
    from safetensors.torch import save_file

    save_file(torch.load(save_rrdbnet(tmp_path / "m.pth", num_grow_ch=32))["params_ema"], str(tmp_path / "m.safetensors"))
    (tmp_path / "m.pth").unlink()
    info = ModelCatalog(tmp_path).info("m.safetensors")
    model = load_model(tmp_path / "m.safetensors", info, LoadOptions("cpu"))
    frames = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    rrdbnet = RealESRGANModel(save_rrdbnet(tmp_path / "m.pth", num_grow_ch=32), device="cpu", dtype="fp32")
    assert info.architecture == "ESRGAN"
    assert np.abs(model.upscale_samples(frames).astype(int) - rrdbnet.upscale_samples(frames)).max() <= 1


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_large_model_loads_without_a_second_copy_of_its_weights(tmp_path, suffix):
    """A spandrel file's load peaked at 2x its size: the network built for real, random weights
    and all, beside the file's tensors (mapped, their pages resident) until they were copied in."""
    from spandrel.architectures.SPAN import SPAN

    torch.manual_seed(0)
    path = save_state(SPAN(num_in_ch=3, num_out_ch=3, feature_channels=96, upscale=4).state_dict(), tmp_path / f"m{suffix}")
    tiny = save_spandrel_model("SPAN", tmp_path / f"tiny{suffix}")  # loaded first: imports and first-call work
    size = path.stat().st_size
    load = "SpandrelModel(Path({!r}))"
    peak = peak_memory_of(load.format(str(path)), setup="\n".join([
        "from pathlib import Path", "from tmlsr_ray.models.spandrel import SpandrelModel", load.format(str(tiny))]))
    assert peak < 1.3 * size, f"peak {peak / 2**20:.0f} MiB for a file of {size / 2**20:.0f} MiB"


def test_a_compact_file_read_by_spandrel_gets_the_compact_memory_estimate_not_a_transformers(tmp_path):
    """spandrel names the architecture "RealESRGAN Compact": looked up as "Compact" it got the
    transformers' estimate, 16 to 32 times its measured peak, so its passes took that many times
    fewer frames than fit."""
    from tmlsr_ray.models.realesrgan import ACTIVATIONS_PER_FEATURE

    model = spandrel_backend.SpandrelModel(save_spandrel_model("Compact", tmp_path / "c.pth"), LoadOptions("cpu"))
    assert model._activations == ACTIVATIONS_PER_FEATURE["SRVGGNetCompact"]
