import pytest

from tmlsr_ray.storage.base import output_key
from tmlsr_ray.storage.local import LocalStorage


def test_keys_group_outputs_by_day_and_task():
    assert output_key("abc", "output.png", now=0) == "1970/01/01/abc/output.png"


def test_put_returns_a_service_relative_url_and_the_file_can_be_opened(tmp_path):
    storage = LocalStorage(tmp_path / "root")
    (tmp_path / "result.png").write_bytes(b"png")
    url = storage.put("2026/01/01/t/output.png", tmp_path / "result.png", "image/png")
    assert url == "/files/2026/01/01/t/output.png"
    assert storage.open_path("2026/01/01/t/output.png").read_bytes() == b"png"


@pytest.mark.parametrize("key", ["../secret", "a/../../secret", "/etc/passwd", "", "missing.png"])
def test_keys_outside_the_root_or_missing_files_open_nothing(tmp_path, key):
    (tmp_path.parent / "secret").write_text("no")
    assert LocalStorage(tmp_path / "root").open_path(key) is None


def test_a_key_escaping_the_root_cannot_be_written(tmp_path):
    with pytest.raises(ValueError):
        LocalStorage(tmp_path).put("../x", tmp_path / "any.png", "image/png")
