from pathlib import Path

import pytest

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


def test_the_cache_keeps_the_last_models_used_and_loads_each_once():
    loads = []
    cache = ModelCache(2, lambda path: loads.append(path.name) or path.name)
    for name in ["a", "b", "a", "c", "a", "b"]:
        assert cache.get(Path(name)) == name
    assert loads == ["a", "b", "c", "b"]  # "b" was evicted by "c", "a" stayed as the most recent
