"""SeedVR2 DiT (NaDiT from GGUF) against the golden data of the reference implementation."""

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import (
    DiTShape,
    dit_tensors,
    peak_memory_of,
    shared_path,
    write_dit_safetensors,
    write_gguf,
    write_random_float_dit,
)
from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.gguf_tensors import Q, read_gguf
from tmlsr_ray.models.seedvr2.attention import window_partition, window_size
from tmlsr_ray.models.seedvr2.dit import NaDiT

TIMESTEP = 1000.0
FP32 = {"max_abs": 1e-3, "rel_l2": 2e-4}  # manifest → recommended_tolerances, fp32 implementation
BF16 = {"max_abs": 5e-2, "rel_l2": 2e-2}  # the same, bf16 implementation


def golden(name: str) -> np.ndarray:
    return np.load(shared_path("golden", "seedvr2", name))


def manifest() -> dict:
    return json.loads(shared_path("golden", "seedvr2", "manifest.json").read_text())


def dit_input(noise: str, cond: str) -> torch.Tensor:
    noise_t, cond_t = torch.from_numpy(golden(noise)), torch.from_numpy(golden(cond))
    return torch.cat([noise_t, cond_t, torch.ones_like(noise_t[..., :1])], dim=-1)


def errors(actual: torch.Tensor, expected: np.ndarray) -> dict:
    diff = actual.double().numpy() - expected.astype(np.float64)
    return {"max_abs": float(np.abs(diff).max()),
            "rel_l2": float(np.linalg.norm(diff) / np.linalg.norm(expected.astype(np.float64)))}


def within(actual: torch.Tensor, expected: np.ndarray, tolerance: dict) -> bool:
    assert tuple(actual.shape) == expected.shape
    measured = errors(actual, expected)
    return all(measured[key] <= tolerance[key] for key in tolerance)


@pytest.fixture(scope="module")
def text() -> torch.Tensor:
    return load_file(str(shared_path("golden", "seedvr2", "pos_emb.safetensors")))["pos_emb"]


@pytest.fixture(scope="module")
def model() -> NaDiT:
    return NaDiT.from_file(shared_path("golden", "seedvr2", "dit.gguf"))


# -- windows ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["pipeline", "wincase"])
@pytest.mark.parametrize("method,shifted", [("720pwin_by_size_bysize", False), ("720pswin_by_size_bysize", True)])
def test_window_partitions_match_the_reference(case, method, shifted):
    partitions = manifest()["window_partitions"]
    grid = tuple(partitions[f"{case}_grid"])
    expected = [tuple(window) for window in partitions[case][method]]
    assert window_partition(grid, shifted) == expected


def test_windows_follow_the_720p_scale():
    assert window_size((21, 45, 80)) == (6, 15, 27)  # a 720p grid: 3 × 3 spatial windows
    assert window_size((3, 22, 20)) == (1, 21, 19)
    # Shifted windows still tile the grid exactly once.
    grid = (5, 68, 120)
    for shifted in (False, True):
        covered = np.zeros(grid, dtype=int)
        for t0, t1, h0, h1, w0, w1 in window_partition(grid, shifted):
            covered[t0:t1, h0:h1, w0:w1] += 1
        assert (covered == 1).all()


# -- configuration ---------------------------------------------------------------------------


def test_configuration_is_inferred_from_the_tensors(model):
    config = model.config
    assert (config.hidden, config.heads, config.head_dim) == (256, 2, 128)
    assert (config.depth, config.mm_layers, config.mlp_hidden) == (2, 1, 768)
    assert (config.txt_in_dim, config.in_channels, config.out_channels, config.patch) == (5120, 33, 16, (1, 2, 2))
    assert config.rope_freqs == 21
    assert "2 blocks (1 mm)" in config.describe() and str(config) == config.describe()


def test_a_missing_tensor_is_a_clear_model_error():
    tensors = [t for t in read_gguf(shared_path("golden", "seedvr2", "dit.gguf"))
               if t.name != "blocks.1.mlp.all.proj_out.weight"]
    with pytest.raises(ModelError, match=r"blocks\.1\.mlp\.all\.proj_out\.weight.*missing"):
        NaDiT.from_tensors(tensors)


def test_an_unknown_tensor_is_a_clear_model_error():
    tensors = list(read_gguf(shared_path("golden", "seedvr2", "dit.gguf")))
    extra = next(t for t in tensors if t.name == "vid_out_norm.weight")
    tensors.append(type(extra)("blocks.0.attn.extra.weight", extra.qtype, extra.shape, extra.data))
    with pytest.raises(ModelError, match=r"unknown tensors.*blocks\.0\.attn\.extra\.weight"):
        NaDiT.from_tensors(tensors)


def test_a_file_without_blocks_is_not_a_dit():
    tensors = [t for t in read_gguf(shared_path("golden", "seedvr2", "dit.gguf")) if not t.name.startswith("blocks.")]
    with pytest.raises(ModelError, match="no 'blocks.N"):
        NaDiT.from_tensors(tensors)


def test_stored_rope_frequencies_equal_the_formula_used_when_they_are_absent(model):
    tensors = [t for t in read_gguf(shared_path("golden", "seedvr2", "dit.gguf")) if not t.name.endswith("rope.freqs")]
    rebuilt = NaDiT.from_tensors(tensors)
    for stored, computed in zip(model.blocks, rebuilt.blocks):
        assert torch.equal(stored.freqs, computed.freqs)


def test_weights_stay_packed(model, text):
    """Only quantized bytes and small fp32 vectors live in the module, before and after a forward."""
    def contents():
        return {name: (b.dtype, tuple(b.shape)) for name, b in model.named_buffers()}

    before = contents()
    model(dit_input("noise.npy", "latent_cond.npy"), text, TIMESTEP)
    assert contents() == before and not list(model.parameters())
    for name, (dtype, shape) in before.items():
        packed = dtype == torch.uint8 and len(shape) == 1
        small = dtype == torch.float32 and len(shape) == 1 and shape[0] <= 6 * model.config.hidden
        assert packed or small, name
    tensors = read_gguf(shared_path("golden", "seedvr2", "dit.gguf"))
    file_bytes = sum(t.data.nbytes for t in tensors if len(t.shape) == 2)
    assert sum(b.numel() for b in model.buffers() if b.dtype == torch.uint8) == file_bytes


# -- numerics --------------------------------------------------------------------------------


def test_embeddings_match_the_reference(model, text):
    assert errors(model.embed_time(TIMESTEP), golden("debug/emb.npy"))["max_abs"] <= 1e-6
    assert errors(model.embed_text(text), golden("debug/txt_in.npy"))["max_abs"] <= 1e-5
    vid, grid = model.embed_video(dit_input("noise.npy", "latent_cond.npy"))
    assert grid == (2, 4, 6)
    assert errors(vid, golden("debug/vid_in.npy"))["max_abs"] <= 1e-5


def test_block_outputs_match_the_reference(model, text):
    emb = model.embed_time(TIMESTEP)
    txt = model.embed_text(text)
    vid, grid = model.embed_video(dit_input("noise.npy", "latent_cond.npy"))
    for index in range(model.config.depth):
        vid, txt = model.run_block(index, vid, txt, emb, grid)
        assert within(vid, golden(f"debug/block{index}_vid.npy"), FP32), index
        assert within(txt, golden(f"debug/block{index}_txt.npy"), FP32), index


@pytest.mark.parametrize("noise,cond,expected", [
    ("noise.npy", "latent_cond.npy", "dit_out.npy"),
    ("wincase_noise.npy", "wincase_cond.npy", "wincase_dit_out.npy"),  # 12 windows per block
])
def test_velocity_matches_the_reference(model, text, noise, cond, expected):
    velocity = model(dit_input(noise, cond), text, TIMESTEP)
    assert velocity.dtype == torch.float32
    assert within(velocity, golden(expected), FP32), errors(velocity, golden(expected))


def test_bfloat16_compute_stays_within_the_bf16_tolerance(text):
    model = NaDiT.from_file(shared_path("golden", "seedvr2", "dit.gguf"), dtype=torch.bfloat16)
    velocity = model(dit_input("noise.npy", "latent_cond.npy"), text, TIMESTEP)
    assert within(velocity, golden("dit_out.npy"), BF16), errors(velocity, golden("dit_out.npy"))


def test_bad_inputs_are_rejected(model, text):
    with pytest.raises(ValueError, match="multiples of 2×2"):
        model(torch.zeros(1, 3, 4, 33), text, TIMESTEP)
    with pytest.raises(ValueError, match="33"):
        model(torch.zeros(1, 4, 4, 32), text, TIMESTEP)
    with pytest.raises(ValueError, match="5120"):
        model(torch.zeros(1, 4, 4, 33), text[:, :100], TIMESTEP)


def test_the_older_dit_layout_of_the_7b_is_refused_clearly():
    """SeedVR2 7B uses the first DiT generation (GELU MLP, no output norm): named, not guessed at."""
    tensors = [t for t in read_gguf(shared_path("golden", "seedvr2", "dit.gguf")) if "proj_in_gate" not in t.name]
    with pytest.raises(ModelError, match="unsupported DiT layout"):
        NaDiT.from_tensors(tensors)


@pytest.mark.parametrize("qtype", [Q.IQ2_XXS, Q.IQ3_S, Q.TQ1_0], ids=lambda qtype: qtype.name)
def test_a_file_with_a_tensor_type_that_cannot_be_dequantized_is_refused_at_load(tmp_path, qtype):
    """Weights stay packed until a layer runs: the type must be checked when the file is read, not
    at a task's first DiT step."""
    path = write_gguf(tmp_path / "seedvr2_ema_3b-IQ2_M.gguf", read_gguf(shared_path("golden", "seedvr2", "dit.gguf")),
                      retype={"blocks.1.mlp.all.proj_in.weight": qtype})
    with pytest.raises(ModelError, match=rf"seedvr2_ema_3b-IQ2_M.gguf .*{qtype.name} \(blocks\.1\.mlp\.all\.proj_in"
                                         r"\.weight\); supported: F32, F16, BF16, Q8_0"):
        NaDiT.from_file(path)


def test_a_safetensors_dit_of_the_same_tensors_gives_the_same_velocity(model, text, tmp_path):
    """ComfyUI-SeedVR2's seedvr2_ema_3b_fp16.safetensors and the like hold the same tensors as its GGUFs."""
    path = write_dit_safetensors(tmp_path / "seedvr2_ema_3b_fp32.safetensors",
                                 read_gguf(shared_path("golden", "seedvr2", "dit.gguf")), torch.float32)
    x = dit_input("noise.npy", "latent_cond.npy")
    assert torch.equal(NaDiT.from_file(path)(x, text, TIMESTEP), model(x, text, TIMESTEP))


@pytest.mark.parametrize("name,dtype", [("dit_fp8.safetensors", torch.float8_e4m3fn),
                                        ("dit_bf16.safetensors", torch.bfloat16), ("dit_bf16.pth", torch.bfloat16)])
def test_a_float_dit_loads_holding_each_weight_once(tmp_path, name, dtype):
    """A float DiT's load peaked at twice its weights as kept (fp16 for an fp8 file: 4x the file):
    the file was read whole, then each weight copied beside it; now each tensor is read (and
    widened) on its own, and the model keeps that copy."""
    shape = DiTShape(hidden=512, blocks=4, mm_layers=1, mlp_hidden=1382)
    write_random_float_dit(tmp_path / name, shape, dtype)
    tiny = tmp_path / f"tiny_{name}"  # loaded first: imports and first-call work are not the file's
    write_random_float_dit(tiny, DiTShape(hidden=128, blocks=2, mm_layers=1, mlp_hidden=256, text_dim=256), dtype)
    kept = 2 * sum(math.prod(dims) for _, dims in dit_tensors(shape))
    peak = peak_memory_of(f"NaDiT.from_file({str(tmp_path / name)!r})", setup="\n".join([
        "import safetensors.torch", "from tmlsr_ray.models.seedvr2.dit import NaDiT", f"NaDiT.from_file({str(tiny)!r})"]))
    # Measured (2 cores, glibc): 0.97x for bf16; fp8 1.06x or 1.25x from run to run (the allocator
    # keeps about the largest tensor's fp8 and fp16 copies, 7.5 MiB, or not); a whole copy: 1.93-2.0x.
    assert peak < 1.5 * kept, f"peak {peak / 2**20:.0f} MiB for {kept / 2**20:.0f} MiB of weights"


def test_a_gguf_dit_loads_holding_each_weight_once(tmp_path):
    """A GGUF DiT's weights were copied out of the mapped file, whose pages counted in the
    process's memory beside the copies until the load ended: 2x the file."""
    from dataclasses import replace

    from tmlsr_ray.models.gguf_tensors import read_tensors

    paths = {}
    for label, shape in (("dit", DiTShape(hidden=512, blocks=4, mm_layers=1, mlp_hidden=1382)),
                         ("tiny", DiTShape(hidden=128, blocks=2, mm_layers=1, mlp_hidden=256, text_dim=256))):
        write_random_float_dit(tmp_path / f"{label}.safetensors", shape, torch.float16)
        tensors = [replace(tensor, data=tensor.data.view(np.float16)) for tensor in read_tensors(tmp_path / f"{label}.safetensors")]
        paths[label] = write_gguf(tmp_path / f"{label}.gguf", tensors)
    kept = 2 * sum(math.prod(dims) for _, dims in dit_tensors(DiTShape(hidden=512, blocks=4, mm_layers=1,
                                                                         mlp_hidden=1382)))
    peak = peak_memory_of(f"NaDiT.from_file({str(paths['dit'])!r})", setup="\n".join([
        "from tmlsr_ray.models.seedvr2.dit import NaDiT", f"NaDiT.from_file({str(paths['tiny'])!r})"]))
    assert peak < 1.5 * kept, f"peak {peak / 2**20:.0f} MiB for {kept / 2**20:.0f} MiB of weights"
