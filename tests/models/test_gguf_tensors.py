"""GGUF dequantization in torch equals gguf.quants.dequantize bit for bit."""

import gguf
import numpy as np
import pytest
import torch
from gguf.quants import dequantize as reference, quantize

from tests.helpers import shared_path, write_dit_safetensors
from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.gguf_tensors import NAME_PREFIX, dequantize, read_gguf, read_tensors, tensor_shapes

Q = gguf.GGMLQuantizationType


@pytest.mark.parametrize("qtype", [Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1])
def test_kernels_equal_the_reference_on_data_packed_by_gguf(qtype):
    values = np.random.default_rng(int(qtype)).standard_normal((6, 512)).astype(np.float32)
    packed = quantize(values, qtype)
    ours = dequantize(torch.from_numpy(packed), qtype, (6, 512)).numpy()
    assert np.array_equal(ours, reference(packed, qtype))
    assert np.abs(ours - values).max() < 0.5  # and it is a real round trip


def _random_k_blocks(qtype, n_blocks: int) -> np.ndarray:
    """K-quant blocks from random bytes with finite f16 scale fields (gguf cannot pack K-quants)."""
    _, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = np.random.default_rng(int(qtype)).integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
    scale_fields = {Q.Q2_K: [type_size - 4, type_size - 2], Q.Q3_K: [type_size - 2], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2],
                    Q.Q6_K: [type_size - 2]}[qtype]
    rng = np.random.default_rng(1)
    for offset in scale_fields:
        blocks[:, offset:offset + 2] = rng.uniform(-0.05, 0.05, n_blocks).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return blocks


@pytest.mark.parametrize("qtype", [Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K], ids=lambda qtype: qtype.name)
def test_k_quant_kernels_equal_the_reference(qtype):
    blocks = _random_k_blocks(qtype, 8)
    ours = dequantize(torch.from_numpy(blocks), qtype, (8, 256)).numpy()
    assert np.array_equal(ours, reference(blocks, qtype))


def test_float_types_are_reinterpreted_exactly():
    values = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    assert np.array_equal(dequantize(torch.from_numpy(values.copy()), Q.F32, (3, 5)).numpy(), values)
    halves = values.astype(np.float16)
    assert np.array_equal(dequantize(torch.from_numpy(halves), Q.F16, (3, 5)).numpy(), halves.astype(np.float32))
    bf16 = torch.from_numpy(values).to(torch.bfloat16)
    assert torch.equal(dequantize(bf16.view(torch.uint8).reshape(3, 10), Q.BF16, (3, 5)), bf16.float())


def test_every_tensor_of_the_golden_checkpoint_matches_the_reference():
    path = shared_path("golden", "seedvr2", "dit.gguf")
    tensors = list(read_gguf(path))
    assert {t.qtype for t in tensors} >= {Q.Q4_K, Q.Q8_0, Q.F16, Q.F32}
    reader = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    for tensor in tensors:
        expected = reference(reader[tensor.name].data, tensor.qtype).reshape(tensor.shape)
        assert np.array_equal(tensor.dequantize().numpy(), expected), tensor.name
    shapes = {t.name: t.shape for t in tensors}
    assert shapes["vid_in.proj.weight"] == (256, 132)  # logical (PyTorch) order


def test_unsupported_types_and_broken_files_are_model_errors(tmp_path):
    with pytest.raises(ModelError, match="IQ2_XXS"):
        dequantize(torch.zeros(66, dtype=torch.uint8), Q.IQ2_XXS, (256,))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 10)
    with pytest.raises(ModelError, match="cannot read GGUF file broken.gguf"):
        list(read_gguf(broken))

    golden = shared_path("golden", "seedvr2", "dit.gguf").read_bytes()
    (tmp_path / "cut.gguf").write_bytes(golden[: len(golden) // 2])  # a download that stopped half-way
    with pytest.raises(ModelError, match=r"cannot read GGUF file cut.gguf: damaged or cut short \(.*reshape"):
        list(read_gguf(tmp_path / "cut.gguf"))


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn,
                                   torch.float8_e5m2], ids=str)
def test_a_float_safetensors_or_torch_checkpoint_reads_as_its_exact_values(tmp_path, dtype, suffix):
    golden = list(read_gguf(shared_path("golden", "seedvr2", "dit.gguf")))[:12]
    path = write_dit_safetensors(tmp_path / f"dit{suffix}", golden, dtype)
    read = {tensor.name: tensor for tensor in read_tensors(path)}
    assert tensor_shapes(path) == {tensor.name: tensor.shape for tensor in golden}
    for tensor in golden:
        expected = tensor.dequantize().to(dtype).float()
        assert torch.equal(read[tensor.name].dequantize(), expected), tensor.name


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float8_e4m3fn,
                                   torch.float8_e5m2], ids=str)
def test_tensors_read_one_at_a_time_hold_the_bytes_a_whole_load_gives(tmp_path, dtype, suffix):
    """Each tensor is read on its own (not the file loaded whole, then copied): the same bytes as the
    library's whole load, fp8 widened to fp16, for any layout and a ComfyUI name prefix."""
    from safetensors.torch import load_file, save_file

    generator = torch.Generator().manual_seed(0)
    state = {f"{NAME_PREFIX}blocks.0.w": torch.randn(3, 5, 7, generator=generator).to(dtype),
             "b": torch.randn(11, generator=generator).to(dtype), "m": torch.randn(64, 33, generator=generator).to(dtype)}
    path = tmp_path / f"tensors{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    whole = load_file(str(path)) if suffix == ".safetensors" else torch.load(path, weights_only=True)
    read = {tensor.name: tensor for tensor in read_tensors(path)}
    assert sorted(read) == sorted(name.removeprefix(NAME_PREFIX) for name in state)
    for name, tensor in whole.items():
        expected = tensor.to(torch.float16) if dtype.itemsize == 1 else tensor
        packed = read[name.removeprefix(NAME_PREFIX)]
        assert packed.shape == tuple(expected.shape), name
        assert packed.data.tobytes() == expected.contiguous().view(torch.uint8).numpy().tobytes(), name


def test_a_safetensors_checkpoint_cut_short_is_a_model_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"vid_in.proj.weight": torch.ones(64, 64)}, str(tmp_path / "dit.safetensors"))
    data = (tmp_path / "dit.safetensors").read_bytes()
    (tmp_path / "dit.safetensors").write_bytes(data[:-100])
    with pytest.raises(ModelError, match="dit.safetensors"):
        list(read_tensors(tmp_path / "dit.safetensors"))


def test_a_safetensors_checkpoint_of_an_unsupported_dtype_is_refused_naming_it(tmp_path):
    from safetensors.torch import save_file

    save_file({"vid_in.proj.weight": torch.zeros(4, 4, dtype=torch.int8)}, str(tmp_path / "dit.safetensors"))
    with pytest.raises(ModelError, match=r"dit.safetensors holds tensor types .*I8 \(vid_in.proj.weight\)"):
        list(read_tensors(tmp_path / "dit.safetensors"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none on this machine)")
def test_kernels_run_on_the_gpu():
    values = np.random.default_rng(0).standard_normal((4, 256)).astype(np.float32)
    packed = quantize(values, Q.Q8_0)
    ours = dequantize(torch.from_numpy(packed).cuda(), Q.Q8_0, (4, 256))
    assert ours.is_cuda and np.array_equal(ours.cpu().numpy(), reference(packed, Q.Q8_0))
