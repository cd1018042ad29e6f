import pytest

from tests.helpers import save_rrdbnet, save_spandrel_model, save_srvgg, save_unshuffle_swinir
from tmlsr_ray.models.base import ModelError, ModelInfo
from tmlsr_ray.models.registry import ModelCache, ModelNameError, available_models, resolve_model_path


def test_only_plain_names_of_existing_files_resolve(tmp_path):
    (tmp_path / "a.pth").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    assert resolve_model_path(tmp_path, "a.pth") == tmp_path / "a.pth"
    assert available_models(tmp_path) == ["a.pth"]
    for name in ("../a.pth", "/etc/passwd", "sub/a.pth", "..", "", "a\x00.pth"):
        with pytest.raises(ModelNameError, match="plain file name"):
            resolve_model_path(tmp_path, name)
    with pytest.raises(ModelNameError, match="'b.pth' not found .* available: a.pth"):
        resolve_model_path(tmp_path, "b.pth")


def test_a_link_in_the_weights_directory_is_served_as_listed_and_a_dangling_one_is_not_found(tmp_path):
    weights, shared = tmp_path / "weights", tmp_path / "shared-models"
    weights.mkdir(), shared.mkdir()
    (shared / "x2.pth").write_bytes(b"x")
    (weights / "linked.pth").symlink_to(shared / "x2.pth")
    (weights / "dangling.pth").symlink_to(shared / "gone.pth")
    assert available_models(weights) == ["linked.pth"]
    assert resolve_model_path(weights, "linked.pth") == weights / "linked.pth"
    with pytest.raises(ModelNameError, match="'dangling.pth' not found .* available: linked.pth"):
        resolve_model_path(weights, "dangling.pth")


def test_the_cache_keeps_the_last_models_used_and_loads_each_once(tmp_path):
    loads = []
    cache = ModelCache(2, lambda path, variant: loads.append(path.name) or path.name)
    for name in "abc":
        (tmp_path / name).write_bytes(b"weights")
    for name in ["a", "b", "a", "c", "a", "b"]:
        assert cache.get(tmp_path / name) == name
    assert loads == ["a", "b", "c", "b"]  # "b" was evicted by "c", "a" stayed as the most recent


def test_each_variant_of_a_file_is_a_model_of_its_own_reported_under_the_files_name(tmp_path):
    """A denoise strength mixes the file's network with its twin's: another network, loaded once."""
    loads = []
    cache = ModelCache(3, lambda path, variant: loads.append(variant) or (path.name, variant))
    path = tmp_path / "realesr-general-x4v3.pth"
    path.write_bytes(b"weights")
    for variant in [None, 0.5, None, 0.5, 0.25]:
        assert cache.get(path, variant) == (path.name, variant)
    assert loads == [None, 0.5, 0.25] and cache.names() == ["realesr-general-x4v3.pth"]


def test_a_denoise_strength_mixed_before_its_twin_was_replaced_is_mixed_again(tmp_path):
    """The blend is read from the twin too: a twin copied over must not leave the old mix served."""
    path, twin = tmp_path / "realesr-general-x4v3.pth", tmp_path / "realesr-general-wdn-x4v3.pth"
    path.write_bytes(b"general")
    twin.write_bytes(b"old twin")
    cache = ModelCache(2, lambda p, variant: (p.read_bytes(), twin.read_bytes()))
    assert cache.get(path, 0.5) == (b"general", b"old twin")
    replacement = tmp_path / "twin.tmp"
    replacement.write_bytes(b"new twin")
    replacement.replace(twin)
    assert cache.get(path, 0.5) == (b"general", b"new twin")


def test_denoise_strengths_of_one_file_make_way_for_each_other_not_for_other_models(tmp_path):
    """A client sending task after task with another strength each: the strengths take the place
    of the one before, and the models other tasks use stay loaded."""
    loads = []
    cache = ModelCache(3, lambda path, variant: loads.append((path.name, variant)))
    for name in ("a.pth", "b.pth", "realesr-general-x4v3.pth"):
        (tmp_path / name).write_bytes(b"weights")
    cache.get(tmp_path / "a.pth"), cache.get(tmp_path / "b.pth")
    for step in range(1, 21):
        cache.get(tmp_path / "realesr-general-x4v3.pth", step / 100)
    cache.get(tmp_path / "a.pth"), cache.get(tmp_path / "b.pth")
    assert loads.count(("a.pth", None)) == 1 and loads.count(("b.pth", None)) == 1, loads
    assert cache.names() == ["a.pth", "b.pth", "realesr-general-x4v3.pth"]


def test_a_model_file_replaced_in_place_is_loaded_again(tmp_path):
    """Another network copied over the file: the replica must not keep serving the old one."""
    path = tmp_path / "swap.pth"
    path.write_bytes(b"x2 network")
    cache = ModelCache(2, lambda p, variant: p.read_bytes())
    assert cache.get(path) == b"x2 network" and cache.get(path) == b"x2 network"
    replacement = tmp_path / "swap.tmp"
    replacement.write_bytes(b"x4 network, longer")
    replacement.replace(path)
    assert cache.get(path) == b"x4 network, longer" and cache.names() == ["swap.pth"]


def test_a_replaced_file_is_dropped_before_it_loads_again_and_not_reported_loaded_when_that_fails(tmp_path):
    """The old model was kept while the new one loaded (two in memory at capacity 1: a SeedVR2 DiT
    and VAE twice on the GPU), and after a failed load (a broken VAE copied beside the DiT) it stayed
    reported as loaded in /models though every task then failed."""
    import weakref

    class Network:
        pass

    path = tmp_path / "swap.pth"
    path.write_bytes(b"x2 network")
    held_while_loading, reports = [], []

    def load(p, variant) -> Network:
        held_while_loading.append(old is not None and old() is not None)
        if p.read_bytes() == b"broken":
            raise ModelError("cannot read swap.pth")
        return Network()

    old = None
    cache = ModelCache(1, load, on_change=reports.append)
    old = weakref.ref(cache.get(path))
    path.write_bytes(b"x4 network")
    cache.get(path)
    assert held_while_loading == [False, False]
    path.write_bytes(b"broken")
    with pytest.raises(ModelError):
        cache.get(path)
    assert cache.names() == [] and reports[-1] == []


def test_a_file_replaced_by_one_of_the_same_size_and_time_is_read_and_loaded_again(tmp_path):
    """A copy that keeps its source's mtime (cp -p, rsync -a, a model pack unzipped) over a file of
    the same size, as two networks of one architecture are."""
    import os

    from tests.helpers import save_spandrel_model
    from tmlsr_ray.models.registry import ModelCatalog

    path = save_spandrel_model("SPAN", tmp_path / "m.safetensors")
    catalog, cache = ModelCatalog(tmp_path), ModelCache(2, lambda p, variant: p.read_bytes())
    assert catalog.info("m.safetensors").architecture == "SPAN"
    before, stat = cache.get(path), path.stat()
    replacement = tmp_path / "copy.tmp"
    replacement.write_bytes(bytes(255 - b for b in before))
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replacement.replace(path)
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    assert cache.get(path) != before
    with pytest.raises(ModelError, match="cannot read model file m.safetensors"):
        catalog.info("m.safetensors")


def test_families_recognise_files_by_contents_not_by_name(tmp_path):
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.registry import ModelCatalog

    save_srvgg(tmp_path / "seedvr2-lookalike.pth", scale=2)  # a Real-ESRGAN file whatever its name says
    (tmp_path / "realesrgan.gguf").write_bytes(b"GGUF" + bytes(64))  # a GGUF that is no SeedVR2
    catalog = ModelCatalog(tmp_path)
    info = catalog.info("seedvr2-lookalike.pth")
    assert (info.family, info.architecture, info.scale, info.replica_kind) == ("realesrgan", "SRVGGNetCompact", 2, "upscaler")
    with pytest.raises(ModelError, match="realesrgan.gguf"):
        catalog.info("realesrgan.gguf")


def test_the_catalog_reads_a_file_again_only_when_it_changes(tmp_path):
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.registry import ModelCatalog

    path = save_srvgg(tmp_path / "m.pth", scale=2)
    catalog = ModelCatalog(tmp_path)
    first = catalog.entry(path)
    assert catalog.entry(path) is first
    save_srvgg(path, scale=4, num_feat=4)
    assert catalog.info("m.pth").scale == 4
    path.write_bytes(b"not a checkpoint")
    [entry] = catalog.entries()
    assert entry.info is None and "cannot read model file m.pth" in entry.error


def test_the_seedvr2_dit_is_recognised_by_its_tensors_with_its_companions(tmp_path):
    import shutil

    from tests.helpers import shared_path
    from tmlsr_ray.models.registry import ModelCatalog

    golden = shared_path("golden", "seedvr2")
    shutil.copy(golden / "dit.gguf", tmp_path / "any-name.gguf")
    catalog = ModelCatalog(tmp_path)
    with pytest.raises(ModelError, match="ema_vae_fp16.safetensors"):  # the companion it needs is named
        catalog.info("any-name.gguf")
    shutil.copy(golden / "vae.safetensors", tmp_path / "ema_vae_fp16.safetensors")
    shutil.copy(golden / "pos_emb.safetensors", tmp_path / "pos_emb.safetensors")
    (tmp_path / "any-name.gguf").touch()  # a new mtime: read again
    info = ModelCatalog(tmp_path).info("any-name.gguf")
    assert (info.family, info.scale, info.temporal, info.seeded, info.replica_kind) == ("seedvr2", None, True, True, "seedvr2")


def test_a_seedvr2_companion_put_in_place_or_replaced_is_seen_without_touching_the_dit(tmp_path):
    """The refusal says to put the VAE beside the DiT; doing so left the refusal cached until the
    DiT file itself changed (or the service restarted), and a loaded model kept a replaced VAE."""
    import shutil

    from tests.helpers import shared_path
    from tmlsr_ray.models.registry import ModelCatalog

    golden = shared_path("golden", "seedvr2")
    shutil.copy(golden / "dit.gguf", tmp_path / "seedvr2_ema_3b-Q4_K_M.gguf")
    shutil.copy(golden / "pos_emb.safetensors", tmp_path / "pos_emb.safetensors")
    catalog = ModelCatalog(tmp_path)
    with pytest.raises(ModelError, match="ema_vae_fp16.safetensors"):
        catalog.info("seedvr2_ema_3b-Q4_K_M.gguf")
    shutil.copy(golden / "vae.safetensors", tmp_path / "ema_vae_fp16.safetensors")
    assert catalog.info("seedvr2_ema_3b-Q4_K_M.gguf").family == "seedvr2"
    (tmp_path / "pos_emb.safetensors").unlink()
    [entry] = catalog.entries()
    assert entry.info is None and "pos_emb" in entry.error
    shutil.copy(golden / "pos_emb.safetensors", tmp_path / "pos_emb.safetensors")
    cache = ModelCache(1, lambda path, variant: object())
    held = cache.get(tmp_path / "seedvr2_ema_3b-Q4_K_M.gguf")
    shutil.copy(golden / "vae.safetensors", tmp_path / "ema_vae_fp16.safetensors")  # a new VAE file
    assert cache.get(tmp_path / "seedvr2_ema_3b-Q4_K_M.gguf") is not held, "the model kept the VAE it was loaded with"


def test_a_seedvr2_dit_of_an_unsupported_quant_type_is_listed_with_the_reason(tmp_path):
    import shutil

    import gguf

    from tests.helpers import shared_path, write_gguf
    from tmlsr_ray.models.gguf_tensors import read_gguf
    from tmlsr_ray.models.registry import ModelCatalog

    golden = shared_path("golden", "seedvr2")
    shutil.copy(golden / "vae.safetensors", tmp_path / "ema_vae_fp16.safetensors")
    shutil.copy(golden / "pos_emb.safetensors", tmp_path / "pos_emb.safetensors")
    write_gguf(tmp_path / "seedvr2_ema_3b-IQ2_M.gguf", read_gguf(golden / "dit.gguf"),
               retype={"vid_out.proj.weight": gguf.GGMLQuantizationType.IQ2_S})
    [entry] = ModelCatalog(tmp_path).entries()
    assert entry.info is None and "IQ2_S (vid_out.proj.weight)" in entry.error


def test_a_refused_seedvr2_dit_is_listed_and_refused_naming_its_file(tmp_path):
    """The 7B's older DiT layout was refused as "unsupported DiT layout: ..." with no file named:
    among several GGUFs a task's error did not say which one."""
    import shutil

    from tests.helpers import shared_path, write_gguf
    from tmlsr_ray.models.gguf_tensors import read_gguf
    from tmlsr_ray.models.registry import ModelCatalog

    golden = shared_path("golden", "seedvr2")
    shutil.copy(golden / "vae.safetensors", tmp_path / "ema_vae_fp16.safetensors")
    shutil.copy(golden / "pos_emb.safetensors", tmp_path / "pos_emb.safetensors")
    older = [t for t in read_gguf(golden / "dit.gguf") if "proj_in_gate" not in t.name]
    write_gguf(tmp_path / "seedvr2_ema_7b-Q4_K_M.gguf", older)
    [entry] = ModelCatalog(tmp_path).entries()
    assert entry.info is None and entry.error.startswith("model file seedvr2_ema_7b-Q4_K_M.gguf: unsupported DiT")
    with pytest.raises(ModelError, match=r"^model file seedvr2_ema_7b-Q4_K_M.gguf: unsupported DiT layout"):
        ModelCatalog(tmp_path).info("seedvr2_ema_7b-Q4_K_M.gguf")


def test_a_seedvr2_dit_in_safetensors_is_served_like_the_gguf_of_the_same_tensors(tmp_path):
    """The SeedVR2 command-line tools ship seedvr2_ema_3b_fp16.safetensors and _fp8_e4m3fn.safetensors
    DiTs; they were listed as 'no architecture spandrel knows'."""
    import shutil

    import numpy as np
    import torch

    from tests.helpers import shared_path, write_dit_safetensors
    from tmlsr_ray.models.gguf_tensors import read_gguf
    from tmlsr_ray.models.registry import ModelCatalog, load_model
    from tmlsr_ray.models.seedvr2.pipeline import RestoreOptions

    golden = shared_path("golden", "seedvr2")
    for name in ("vae.safetensors", "pos_emb.safetensors"):
        shutil.copy(golden / name, tmp_path / {"vae.safetensors": "ema_vae_fp16.safetensors"}.get(name, name))
    shutil.copy(golden / "dit.gguf", tmp_path / "seedvr2_ema_3b-Q4_K_M.gguf")
    for dtype, name in ((torch.float32, "seedvr2_ema_3b_fp32.safetensors"),
                        (torch.float8_e4m3fn, "seedvr2_ema_3b_fp8_e4m3fn.safetensors")):
        write_dit_safetensors(tmp_path / name, read_gguf(golden / "dit.gguf"), dtype)
    catalog = ModelCatalog(tmp_path)
    assert {entry.name: entry.info.family for entry in catalog.entries()} == {
        "seedvr2_ema_3b-Q4_K_M.gguf": "seedvr2", "seedvr2_ema_3b_fp32.safetensors": "seedvr2",
        "seedvr2_ema_3b_fp8_e4m3fn.safetensors": "seedvr2"}
    frames = np.load(golden / "input.npy")[:1]
    outputs = {name: load_model(tmp_path / name, catalog.info(name)).restore(frames, RestoreOptions(32, seed=3))
               for name in ("seedvr2_ema_3b-Q4_K_M.gguf", "seedvr2_ema_3b_fp32.safetensors")}
    assert np.array_equal(*outputs.values())


def test_the_official_release_files_are_served_like_the_gguf_of_the_same_tensors(tmp_path):
    """ByteDance's SeedVR2-3B ships seedvr2_ema_3b.pth, ema_vae.pth, pos_emb.pt and neg_emb.pt: the
    DiT was listed as 'no architecture spandrel knows', and ema_vae.pth as a model of its own."""
    import shutil

    import numpy as np
    import torch

    from tests.helpers import save_official_companions, shared_path, write_dit_safetensors
    from tmlsr_ray.models.gguf_tensors import read_gguf
    from tmlsr_ray.models.registry import ModelCatalog, load_model
    from tmlsr_ray.models.seedvr2.pipeline import RestoreOptions

    golden = shared_path("golden", "seedvr2")
    official, packed = tmp_path / "official", tmp_path / "gguf"
    official.mkdir(), packed.mkdir()
    write_dit_safetensors(official / "seedvr2_ema_3b.pth", read_gguf(golden / "dit.gguf"), torch.float32)
    save_official_companions(official)
    shutil.copy(golden / "dit.gguf", packed / "seedvr2_ema_3b-Q4_K_M.gguf")
    shutil.copy(golden / "vae.safetensors", packed / "ema_vae_fp16.safetensors")
    shutil.copy(golden / "pos_emb.safetensors", packed / "pos_emb.safetensors")
    catalog = ModelCatalog(official)
    assert [(entry.name, entry.info.family) for entry in catalog.entries()] == [("seedvr2_ema_3b.pth", "seedvr2")]
    frames = np.load(golden / "input.npy")[:1]
    restored = load_model(official / "seedvr2_ema_3b.pth", catalog.info("seedvr2_ema_3b.pth")).restore(
        frames, RestoreOptions(32, seed=3))
    gguf_name = "seedvr2_ema_3b-Q4_K_M.gguf"
    reference = load_model(packed / gguf_name, ModelCatalog(packed).info(gguf_name)).restore(frames, RestoreOptions(32, seed=3))
    assert np.array_equal(restored, reference)


def test_a_seedvr2_dit_pth_of_the_legacy_format_is_listed_as_seedvr2(tmp_path):
    """A .pth saved before PyTorch 1.6's zip format cannot be memory-mapped: it was listed as 'no
    architecture spandrel knows matches its tensors (nor Real-ESRGAN's, nor SeedVR2's)'."""
    import torch

    from tests.helpers import save_official_companions, shared_path
    from tmlsr_ray.models.gguf_tensors import read_gguf
    from tmlsr_ray.models.registry import ModelCatalog

    state = {tensor.name: tensor.dequantize() for tensor in read_gguf(shared_path("golden", "seedvr2", "dit.gguf"))}
    torch.save(state, tmp_path / "seedvr2_ema_3b.pth", _use_new_zipfile_serialization=False)
    save_official_companions(tmp_path)
    entry = ModelCatalog(tmp_path).entry(tmp_path / "seedvr2_ema_3b.pth")
    assert entry.info is not None and entry.info.family == "seedvr2", entry


def test_an_empty_model_file_is_listed_with_the_reason(tmp_path):
    from tmlsr_ray.models.registry import ModelCatalog

    (tmp_path / "empty.pth").write_bytes(b"")
    entry = ModelCatalog(tmp_path).entry(tmp_path / "empty.pth")
    assert entry.info is None and entry.error == "model file empty.pth is empty"


def test_a_model_file_named_in_capitals_is_listed_and_served(tmp_path):
    """Community models copied from Windows come as 4x-Model.PTH; spandrel reads suffixes so too."""
    from tests.helpers import save_spandrel_model, save_srvgg
    from tmlsr_ray.models.registry import ModelCatalog

    save_srvgg(tmp_path / "Compact-x2.PTH", scale=2)
    save_spandrel_model("SPAN", tmp_path / "span.SafeTensors", scale=2)
    catalog = ModelCatalog(tmp_path)
    assert available_models(tmp_path) == ["Compact-x2.PTH", "span.SafeTensors"]
    assert catalog.info("Compact-x2.PTH").family == "realesrgan"
    assert catalog.info("span.SafeTensors").architecture == "SPAN"


def test_a_file_that_is_part_of_seedvr2_is_refused_as_such_not_as_an_unknown_network(tmp_path):
    from safetensors.torch import save_file
    import torch

    save_file({"x": torch.zeros(1)}, str(tmp_path / "ema_vae_fp16.safetensors"))
    assert available_models(tmp_path) == []
    with pytest.raises(ModelNameError, match="ema_vae_fp16.safetensors is part of the seedvr2 models"):
        resolve_model_path(tmp_path, "ema_vae_fp16.safetensors")


def test_a_model_file_removed_after_the_listing_is_left_out_or_not_found(tmp_path, monkeypatch):
    from tests.helpers import save_srvgg
    from tmlsr_ray.models import registry

    save_srvgg(tmp_path / "kept.pth", scale=2)
    catalog = registry.ModelCatalog(tmp_path)
    monkeypatch.setattr(registry, "available_models", lambda weights_dir: ["gone.pth", "kept.pth"])
    assert [entry.name for entry in catalog.entries()] == ["kept.pth"]
    with pytest.raises(registry.ModelNameError, match="'gone.pth' not found"):
        catalog.entry(tmp_path / "gone.pth")


@pytest.mark.parametrize("saved,device", [
    (lambda path: save_srvgg(path), "meta"),
    (lambda path: save_rrdbnet(path, num_block=3), "meta"),
    (lambda path: save_spandrel_model("AuraSR", path, scale=4), "meta"),
    (lambda path: save_spandrel_model("ESRGAN", path), "meta"),
    # their constructors read drop-path rates back (torch.linspace(...).item()): made for real
    *[(lambda path, arch=arch: save_spandrel_model(arch, path), "meta") for arch in ("SwinIR", "HAT", "DAT")],
    (lambda path: save_spandrel_model("IPT", path), "meta"),  # its mean shift sets its weight's .data: made on meta
], ids=["Compact", "RRDBNet", "AuraSR", "spandrel-ESRGAN", "SwinIR", "HAT", "DAT", "IPT"])
def test_a_file_is_recognised_with_its_network_built_on_the_meta_device_as_when_built_for_real(tmp_path, monkeypatch,
                                                                                               saved, device):
    """Recognition built every network for real, weights and their random initialisation: an
    RRDBNet of 200 blocks (551 MiB) took 35 s and 1.1 GiB in the ingress, for GET /models; SwinIR,
    HAT and DAT still were, all their tensors put on meta failing their constructors."""
    from tmlsr_ray.models import meta_device, realesrgan, spandrel
    from tmlsr_ray.models.registry import recognise

    path = saved(tmp_path / "m.pth")
    built_on = []

    def recorded(build):
        built = meta_device.built_on_meta(build)
        built_on.append(next(getattr(built, "model", built).parameters()).device.type)
        return built

    for backend in (realesrgan, spandrel):
        monkeypatch.setattr(backend, "built_on_meta", recorded)
    on_meta = recognise(path)
    assert built_on == [device]
    for backend in (realesrgan, spandrel):
        monkeypatch.setattr(backend, "built_on_meta", lambda build: build())
    assert recognise(path) == on_meta


def test_a_file_whose_architecture_is_built_for_real_after_failing_on_meta_is_read_as_the_file_holds_it(tmp_path):
    """spandrel's SwinIR loader renames a pixel-unshuffle SwinIR's first layer in the dict it is
    given before its constructor fails on meta: the build for real then found no unshuffle, and
    the file, served before, was listed as "does not load" (its last layer 3 channels, not 12)."""
    from tmlsr_ray.models.registry import ModelCatalog

    save_unshuffle_swinir(tmp_path / "m.pth", scale=2)
    entry = ModelCatalog(tmp_path).entry(tmp_path / "m.pth")
    assert entry.error is None and (entry.info.architecture, entry.info.scale, entry.info.channels) == \
        ("SwinIR", 2, (3, 3)), entry.error


@pytest.mark.parametrize("arch", ["Compact", "SPAN"])
def test_a_file_of_tensors_without_data_is_refused_when_recognised_not_when_its_task_loads_it(tmp_path, arch):
    """Weights saved from a network still on the meta device have shapes but no data: built on meta
    as well, recognition took such a file for a model, listed and admitted, and its tasks failed
    at the replica's load ("While copying the parameter named body.0.weight ...")."""
    import torch

    from tests.helpers import tiny_spandrel_network
    from tmlsr_ray.models.base import LoadOptions
    from tmlsr_ray.models.registry import ModelCatalog, load_model

    with torch.device("meta"):
        torch.save(tiny_spandrel_network(arch, 2).state_dict(), tmp_path / "m.pth")
    entry = ModelCatalog(tmp_path).entry(tmp_path / "m.pth")
    assert entry.info is None and "holds tensors without data" in entry.error, entry
    with pytest.raises(ModelError, match="holds tensors without data"):
        load_model(tmp_path / "m.pth", ModelInfo(name="m.pth", family="spandrel", architecture=arch, scale=2),
                   LoadOptions("cpu"))


def test_a_file_is_recognised_once_per_version_however_many_ask_at_once(tmp_path, monkeypatch):
    """A GET /models and a POST naming a file just put in place each built its network (the
    catalog kept a file's entry only once read), at once in the ingress's threads."""
    import threading
    import time

    from tmlsr_ray.models import registry

    path = save_srvgg(tmp_path / "m.pth")
    recognised, recognise = [], registry.recognise

    def slow_recognise(file):
        recognised.append(file.name)
        time.sleep(0.3)  # long enough for the other callers to ask meanwhile
        return recognise(file)

    monkeypatch.setattr(registry, "recognise", slow_recognise)
    catalog = registry.ModelCatalog(tmp_path)
    callers = [threading.Thread(target=catalog.info, args=("m.pth",)) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert catalog.info("m.pth").scale == 4 and recognised == ["m.pth"]
    save_srvgg(path, scale=2)  # a new version
    assert catalog.info("m.pth").scale == 2 and catalog.info("m.pth").scale == 2 and recognised == ["m.pth"] * 2
