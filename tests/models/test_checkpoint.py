"""A checkpoint is read as data only, and a file that is not one is named for what it is."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import tiny_spandrel_network
from tmlsr_ray.models.base import ModelError
from tmlsr_ray.models.checkpoint import load_checkpoint, read_state_dict


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_tensors_load_from_a_pth_and_a_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    torch.save({"params_ema": {"w": torch.ones(2)}}, tmp_path / "a.pth")
    save_file({"w": torch.ones(2)}, str(tmp_path / "a.safetensors"))
    assert torch.equal(load_checkpoint(tmp_path / "a.pth")["params_ema"]["w"], torch.ones(2))
    assert torch.equal(load_checkpoint(tmp_path / "a.safetensors")["w"], torch.ones(2))


def test_a_pickled_module_is_refused_naming_its_class_without_pytorchs_advice(tmp_path):
    torch.save(torch.nn.Conv2d(1, 1, 1), tmp_path / "whole.pth")
    with pytest.raises(ModelError) as refused:
        load_checkpoint(tmp_path / "whole.pth")
    message = str(refused.value)
    assert "cannot read model file whole.pth: it holds Python objects (torch.nn.modules.conv.Conv2d)" in message
    assert "state_dict" in message and "weights_only" not in message and "\n" not in message


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_a_pickle_that_would_run_code_never_runs_it(tmp_path, writer):
    marker, path = tmp_path / "ran", tmp_path / "evil.pth"
    if writer == "torch":
        torch.save({"w": RunsCode(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"w": RunsCode(marker)}))
    with pytest.raises(ModelError, match="cannot read model file evil.pth: "):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("name,content,reason", [
    ("cut.pth", None, "truncated or not a PyTorch checkpoint"),
    ("cut-legacy.pth", None, "truncated or not a PyTorch checkpoint"),
    ("notes.pth", b"hello world\n", "not a PyTorch checkpoint"),
    ("noise.pth", bytes(range(256)) * 20, "not a PyTorch checkpoint"),
    ("noise.safetensors", b"\xff" * 64, "not a safetensors file"),
])
def test_a_file_that_is_no_checkpoint_is_named_so(tmp_path, name, content, reason):
    if content is None:  # cut mid-way, in the zip format or in the one before PyTorch 1.6
        torch.save({"w": torch.zeros(1000)}, tmp_path / "whole.pth", _use_new_zipfile_serialization="legacy" not in name)
        content = (tmp_path / "whole.pth").read_bytes()[:2000]
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelError, match=f"cannot read model file {name}: {reason}") as refused:
        load_checkpoint(tmp_path / name)
    assert "weights_only" not in str(refused.value)


def _trainer_layouts(state):
    """How trainers and users save one network's tensors."""
    other = {name: tensor + 1 for name, tensor in state.items()}
    return {
        "compiled": {f"_orig_mod.{name}": tensor for name, tensor in state.items()},
        "dataparallel": {"params": {f"module.{name}": tensor for name, tensor in state.items()}},
        "compiled-ema": {"params_ema": {f"_orig_mod.{name}": tensor for name, tensor in state.items()}},
        "ema-beside-params": {"params": other, "params_ema": state, "iter": 5000},
        "net_g-with-iteration": {"net_g": state, "iter": 5000},
        "training-state": {"state_dict": state, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4}]}, "epoch": 3},
        "bare-with-iteration": {**state, "iter": 5000},
    }


@pytest.mark.parametrize("arch,family", [("Compact", "realesrgan"), ("SwinIR", "spandrel")])
def test_a_trainers_checkpoint_layout_is_served_as_the_bare_network(tmp_path, arch, family):
    from tmlsr_ray.models.base import LoadOptions
    from tmlsr_ray.models.registry import ModelCatalog, load_model

    state = tiny_spandrel_network(arch, 2).state_dict()
    torch.save(state, tmp_path / "bare.pth")
    for layout, contents in _trainer_layouts(state).items():
        torch.save(contents, tmp_path / f"{layout}.pth")
    catalog = ModelCatalog(tmp_path)
    frames = np.random.default_rng(0).integers(0, 256, (1, 12, 16, 3), dtype=np.uint8)
    want = load_model(tmp_path / "bare.pth", catalog.info("bare.pth"), LoadOptions("cpu")).upscale_samples(frames)
    for layout in _trainer_layouts(state):
        info = catalog.info(f"{layout}.pth")
        assert (info.family, info.scale) == (family, 2), layout
        got = load_model(tmp_path / f"{layout}.pth", info, LoadOptions("cpu")).upscale_samples(frames)
        assert np.array_equal(got, want), layout


def test_a_checkpoint_is_read_by_its_contents_whatever_its_suffix_says(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "safetensors-inside.pth"))
    torch.save({"w": torch.ones(2)}, tmp_path / "pytorch-inside.safetensors")
    torch.save({"w": torch.ones(2)}, tmp_path / "legacy-inside.safetensors", _use_new_zipfile_serialization=False)
    for name in ("safetensors-inside.pth", "pytorch-inside.safetensors", "legacy-inside.safetensors"):
        assert torch.equal(load_checkpoint(tmp_path / name)["w"], torch.ones(2)), name


def test_a_pth_is_mapped_not_read_so_listing_a_large_one_costs_no_memory(tmp_path):
    """Recognising a model lists its tensors: the official SeedVR2 DiT .pth (several GB) was read whole
    into every process that lists or serves models."""
    path = tmp_path / "large.pth"
    torch.save({"weight": torch.ones(64, 1024, 1024)}, path)  # 256 MiB

    def resident_bytes() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = resident_bytes()
    state = load_checkpoint(path)
    assert resident_bytes() - before < 64 * 2**20
    assert state["weight"].shape == (64, 1024, 1024) and float(state["weight"][-1, -1, -1]) == 1.0


@pytest.mark.parametrize("layout", ["zip", "legacy", "safetensors"])
def test_a_state_dict_read_to_keep_equals_the_mapped_one(tmp_path, layout):
    """A model that keeps a file's tensors reads them (``mapped=False``); recognition maps them:
    the same tensors, bit for bit, of every type."""
    generator = torch.Generator().manual_seed(0)
    state = {f"body.{i}.weight": torch.randn(4, 3, 3, 3, generator=generator).to(dtype)
             for i, dtype in enumerate((torch.float32, torch.float16, torch.bfloat16))}
    path = tmp_path / ("m.safetensors" if layout == "safetensors" else "m.pth")
    if layout == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save({"params_ema": state}, path, _use_new_zipfile_serialization=layout == "zip")
    mapped, read = read_state_dict(path), read_state_dict(path, mapped=False)
    assert sorted(mapped) == sorted(read) == sorted(state)
    for name, tensor in state.items():
        assert read[name].dtype == mapped[name].dtype == tensor.dtype, name
        assert torch.equal(read[name], tensor) and torch.equal(mapped[name], tensor), name


@pytest.mark.parametrize("layout", ["zip", "safetensors", "safetensors named .pth"])
def test_a_state_dict_read_to_keep_does_not_follow_its_file_rewritten_in_place(tmp_path, layout):
    """Read to keep (``mapped=False``), a file holding safetensors was mapped all the same: a model
    kept the mapping, and its weights changed when the file was rewritten in place (a file cut
    short under it is SIGBUS at the next frame)."""
    from safetensors.torch import save_file

    state = {"body.0.weight": torch.ones(64, 64), "body.0.bias": torch.ones(64)}
    path = tmp_path / ("m.safetensors" if layout == "safetensors" else "m.pth")
    save_file(state, str(path)) if layout.startswith("safetensors") else torch.save(state, path)
    read = read_state_dict(path, mapped=False)
    with open(path, "r+b") as file:
        file.seek(path.stat().st_size // 2)
        file.write(bytes(path.stat().st_size - file.tell()))
    for name, tensor in state.items():
        assert torch.equal(read[name], tensor), name
