"""The whole SeedVR2 pipeline (preprocess → VAE → DiT → VAE → colour fix) against the golden data,
the offline command, and the companion files a checkpoint needs."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.helpers import REPO, save_official_companions, shared_path
from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.seedvr2.pipeline import (RestoreOptions, SeedVR2Files, SeedVR2Model, load_embedding,
                                             select_dtype)

GOLDEN = ("golden", "seedvr2")


def golden(name: str):
    return shared_path(*GOLDEN, name)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """The tiny golden checkpoint under the file names a real installation uses."""
    folder = tmp_path_factory.mktemp("weights")
    shutil.copy(golden("dit.gguf"), folder / "seedvr2_ema_3b-Q4_K_M.gguf")
    shutil.copy(golden("vae.safetensors"), folder / "ema_vae_fp16.safetensors")
    shutil.copy(golden("pos_emb.safetensors"), folder / "pos_emb.safetensors")
    return folder


@pytest.fixture(scope="module")
def model(weights_dir):
    return SeedVR2Model.load(SeedVR2Files.beside(weights_dir / "seedvr2_ema_3b-Q4_K_M.gguf"), device="cpu")


@pytest.mark.parametrize("color_fix,expected", [("wavelet", "output_wavelet.npy"), ("none", "output_nofix.npy")])
def test_restored_frames_match_the_reference_within_one_level(model, color_fix, expected):
    noise = torch.from_numpy(np.load(golden("noise.npy")))
    out = model.restore(np.load(golden("input.npy")), RestoreOptions(64, color_fix=color_fix), noise=noise)
    reference = np.load(golden(expected))
    assert out.dtype == np.uint8 and out.shape == reference.shape
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1


def test_the_offline_command_writes_the_reference_frames(tmp_path):
    out = tmp_path / "out.npy"
    result = subprocess.run(
        [sys.executable, "-m", "tmlsr_ray.seedvr2", "--dit", str(golden("dit.gguf")),
         "--vae", str(golden("vae.safetensors")), "--embeddings", str(golden("pos_emb.safetensors")),
         "--input", str(golden("input.npy")), "--resolution", "64", "--out", str(out),
         "--noise", str(golden("noise.npy")), "--device", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    reference = np.load(golden("output_wavelet.npy")).astype(int)
    assert np.abs(np.load(out).astype(int) - reference).max() <= 1


def test_the_offline_command_explains_a_bad_input(tmp_path):
    bad = tmp_path / "frames.npy"
    np.save(bad, np.zeros((2, 8, 8), np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "tmlsr_ray.seedvr2", "--dit", "x.gguf", "--vae", "v", "--embeddings", "e",
         "--input", str(bad), "--resolution", "64", "--out", str(tmp_path / "o.npy")],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "uint8 (T, H, W, 3)" in result.stderr


@pytest.mark.parametrize("option,value,said", [
    ("--resolution", "0", "--resolution: must be at least 1"), ("--resolution", "-4", "--resolution: must be at least 1"),
    ("--seed", "-1", "--seed: must be from 0 to 9223372036854775807"),
    ("--seed", str(2**64), "--seed: must be from 0 to 9223372036854775807")])
def test_the_offline_command_refuses_an_out_of_range_number_with_usage(capsys, option, value, said):
    """--resolution 0 ended in a torch traceback; --seed 2**64 in torch's 'Overflow when unpacking long long'."""
    from tmlsr_ray.seedvr2 import main

    args = {"--resolution": "64", "--seed": "1", option: value}
    with pytest.raises(SystemExit) as exited:
        main(["--dit", "d.gguf", "--vae", "v", "--embeddings", "e", "--input", "i.npy", "--out", "o.npy",
              *(item for pair in args.items() for item in pair)])
    assert exited.value.code == 2 and said in capsys.readouterr().err


def test_noise_of_another_shape_than_the_latent_is_named_with_the_shape_expected(model):
    frames = np.load(golden("input.npy"))
    with pytest.raises(ValueError, match=r"noise must be \(2, 8, 12, 16\) for these frames, got \(1, 4, 4, 16\)"):
        model.restore(frames, RestoreOptions(64), noise=torch.zeros(1, 4, 4, 16))


def test_a_seed_gives_the_same_frames_and_another_seed_other_frames(model):
    frames = np.load(golden("input.npy"))[:1]
    first = model.restore(frames, RestoreOptions(64, seed=7))
    assert np.array_equal(first, model.restore(frames, RestoreOptions(64, seed=7)))
    assert not np.array_equal(first, model.restore(frames, RestoreOptions(64, seed=8)))


def test_16_bit_frames_come_back_16_bit_with_the_same_picture(model):
    frames = np.load(golden("input.npy"))
    eight = model.restore(frames, RestoreOptions(64, seed=1))
    sixteen = model.restore(frames.astype(np.uint16) * 257, RestoreOptions(64, seed=1))
    assert sixteen.dtype == np.uint16 and sixteen.shape == eight.shape
    assert np.abs(sixteen / 257.0 - eight).max() <= 1.0


def test_frame_counts_other_than_4n_plus_1_are_padded_and_trimmed(model):
    frames = np.load(golden("input.npy"))
    assert model.restore(frames[:3], RestoreOptions(32)).shape == (3, 32, 44, 3)


@pytest.mark.parametrize("missing,named", [("ema_vae_fp16.safetensors", "ema_vae_fp16.safetensors"),
                                           ("pos_emb.safetensors", "pos_emb.pt")])
def test_a_missing_companion_file_is_named_with_where_it_goes(weights_dir, tmp_path, missing, named):
    for item in weights_dir.iterdir():
        if item.name != missing:
            shutil.copy(item, tmp_path / item.name)
    with pytest.raises(ModelError) as error:
        SeedVR2Files.beside(tmp_path / "seedvr2_ema_3b-Q4_K_M.gguf")
    assert named in str(error.value) and str(tmp_path) in str(error.value)


def test_embeddings_load_from_torch_files_and_from_a_shared_safetensors(weights_dir, tmp_path):
    files = SeedVR2Files.beside(weights_dir / "seedvr2_ema_3b-Q4_K_M.gguf")
    assert files.embeddings["neg_emb"].name == "pos_emb.safetensors"  # both live in one file
    tensor = torch.randn(58, 5120).to(torch.bfloat16)
    torch.save(tensor, tmp_path / "pos_emb.pt")
    torch.save({"neg_emb": tensor}, tmp_path / "neg_emb.pt")
    assert torch.equal(load_embedding(tmp_path / "pos_emb.pt", "pos_emb"), tensor)
    assert torch.equal(load_embedding(tmp_path / "neg_emb.pt", "neg_emb"), tensor)
    (tmp_path / "broken.pt").write_bytes(b"not a tensor")
    with pytest.raises(ModelError, match="broken.pt"):
        load_embedding(tmp_path / "broken.pt", "pos_emb")


def test_a_text_embedding_of_another_width_is_refused_at_load_naming_the_file(weights_dir, tmp_path):
    """It loaded, and every task then failed at its first DiT step with a bare ValueError."""
    for item in weights_dir.iterdir():
        shutil.copy(item, tmp_path / item.name)
    (tmp_path / "pos_emb.safetensors").unlink()
    torch.save(torch.zeros(58, 4096), tmp_path / "pos_emb.pt")
    torch.save(torch.zeros(64, 4096), tmp_path / "neg_emb.pt")
    with pytest.raises(ModelError, match=r"pos_emb.pt holds a \(58, 4096\) text embedding 'pos_emb'; .* takes \(L, 5120\)"):
        SeedVR2Model.load(SeedVR2Files.beside(tmp_path / "seedvr2_ema_3b-Q4_K_M.gguf"), device="cpu")


def test_a_loaded_model_keeps_its_weights_when_the_vae_and_embedding_files_are_overwritten(tmp_path):
    """ema_vae.pth and pos_emb.pt are memory-mapped to be read; a CPU model in float32 kept the
    mapped tensors as its weights, so a file rewritten in place (``cp`` over it) changed the frames
    of the loaded model, and one cut short killed its process with SIGBUS."""
    shutil.copy(golden("dit.gguf"), tmp_path / "dit.gguf")
    save_official_companions(tmp_path, torch.float32)
    model = SeedVR2Model.load(SeedVR2Files.beside(tmp_path / "dit.gguf"), device="cpu", dtype="float32")
    frames = np.load(golden("input.npy"))[:1]
    before = model.restore(frames, RestoreOptions(32, seed=1))
    for name in ("ema_vae.pth", "pos_emb.pt"):
        size = (tmp_path / name).stat().st_size
        with open(tmp_path / name, "r+b") as file:  # in place, as cp writes over a file
            file.seek(size // 4)
            file.write(np.random.default_rng(0).integers(0, 256, size // 2, dtype=np.uint8).tobytes())
    assert np.array_equal(model.restore(frames, RestoreOptions(32, seed=1)), before)


def test_cuda_computes_in_bfloat16_and_the_cpu_in_float32_unless_told():
    assert select_dtype(torch.device("cuda", 0)) == torch.bfloat16
    assert select_dtype(torch.device("cpu")) == torch.float32
    assert select_dtype(torch.device("cuda", 0), "float16") == torch.float16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
@pytest.mark.parametrize("dtype,tolerance", [("float32", 1), ("bfloat16", 16)])
def test_on_cuda_the_frames_match_the_reference(weights_dir, monkeypatch, dtype, tolerance):
    # TF32 would round fp32 convolutions and matmuls to 10-bit mantissas.
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    model = SeedVR2Model.load(SeedVR2Files.beside(weights_dir / "seedvr2_ema_3b-Q4_K_M.gguf"),
                              device="cuda", dtype=dtype)
    assert model.device.type == "cuda" and model.dtype == getattr(torch, dtype)
    noise = torch.from_numpy(np.load(golden("noise.npy")))
    out = model.restore(np.load(golden("input.npy")), RestoreOptions(64), noise=noise)
    reference = np.load(golden("output_wavelet.npy")).astype(int)
    assert np.abs(out.astype(int) - reference).max() <= tolerance
    assert set(model.last_timings) == {"encode_s", "dit_s", "decode_s"}
