import asyncio
import errno
import time

import pytest

from tests.helpers import small_disk
from tmlsr_ray.errors import StorageError
from tmlsr_ray.retry import Backoff
from tmlsr_ray.storage.base import output_key, store_output
from tmlsr_ray.storage.local import LocalStorage


def test_keys_group_outputs_by_day_and_task():
    assert output_key("abc", "output.png", now=0) == "1970/01/01/abc/output.png"


def test_a_later_attempts_output_has_a_name_of_its_own():
    """A run given up on that stores after all must not overwrite the output of the attempt after it."""
    assert output_key("abc", "output.mp4", attempt=2, now=0) == "1970/01/01/abc/output-2.mp4"
    assert output_key("abc", "output", attempt=3, now=0) == "1970/01/01/abc/output-3"


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


def test_an_output_that_does_not_fit_the_disk_fails_once_and_leaves_no_partial_file(tmp_path):
    (tmp_path / "small.png").write_bytes(b"png")
    (tmp_path / "big.mp4").write_bytes(b"v" * 2 * 1024**2)  # on another disk: the put copies it
    with small_disk(tmp_path / "disk") as disk:
        storage = LocalStorage(disk / "outputs")
        storage.put("d/earlier/output.png", tmp_path / "small.png", "image/png")
        with pytest.raises(OSError) as caught:
            asyncio.run(store_output(storage, "d/big/output.mp4", tmp_path / "big.mp4", "video/mp4", Backoff(4, 0.01)))
        assert caught.value.errno == errno.ENOSPC
        assert not [p.name for p in disk.rglob("*") if p.is_file() and p.name != "output.png"]
        assert storage.open_path("d/earlier/output.png").read_bytes() == b"png"
    assert (tmp_path / "big.mp4").stat().st_size == 2 * 1024**2, "the source stays for the task's cleanup"


def test_deleting_an_output_removes_its_task_folder_but_not_the_day_a_neighbour_is_stored_in(tmp_path):
    """Retention ran once per task: every deleted output had left its empty folder behind."""
    storage = LocalStorage(tmp_path / "root")
    for task in ("a", "b"):
        (tmp_path / f"{task}.png").write_bytes(b"png")
        storage.put(f"2026/01/01/{task}/output.png", tmp_path / f"{task}.png", "image/png")
    storage.delete("2026/01/01/a/output.png")
    assert sorted(p.name for p in (tmp_path / "root" / "2026" / "01" / "01").iterdir()) == ["b"]
    storage.delete("2026/01/01/a/output.png")  # again: nothing left to remove
    (tmp_path / "loose.png").write_bytes(b"png")
    storage.put("loose.png", tmp_path / "loose.png", "image/png")
    storage.delete("loose.png")  # a key right below the root leaves the root
    assert (tmp_path / "root").is_dir()


class _SlowToReturn(LocalStorage):
    """A put whose file is in place before the call returns (as a thread finishing its move)."""

    def put(self, key, source, content_type):
        url = super().put(key, source, content_type)
        time.sleep(0.3)
        return url


def test_an_upload_canceled_after_its_file_landed_leaves_nothing_behind(tmp_path):
    """The task says canceled, so no record names the file: retention would never remove it."""
    storage = _SlowToReturn(tmp_path / "root")
    (tmp_path / "result.png").write_bytes(b"png")

    async def cancel_during_the_put():
        upload = asyncio.ensure_future(store_output(storage, "2026/01/01/t/output.png", tmp_path / "result.png",
                                                    "image/png", Backoff(1, 0.01)))
        await asyncio.sleep(0.1)
        upload.cancel()
        with pytest.raises(asyncio.CancelledError):
            await upload

    asyncio.run(cancel_during_the_put())
    assert not list((tmp_path / "root").rglob("*.png")) and not (tmp_path / "root" / "2026/01/01/t").exists()


def test_deleting_an_output_removes_a_copy_its_run_left_unfinished(tmp_path):
    storage = LocalStorage(tmp_path / "root")
    folder = tmp_path / "root" / "2026/01/01/c"
    folder.mkdir(parents=True)
    (folder / "output.mp4.partial").write_bytes(b"half")
    storage.delete("2026/01/01/c/output.mp4")
    assert not folder.exists()


def test_an_output_stored_in_oss_is_not_reported_deleted_by_local_storage(tmp_path):
    """Retention would forget it while it stays in the bucket (the service switched storage)."""
    with pytest.raises(StorageError, match="not in local storage"):
        LocalStorage(tmp_path / "root").delete("oss://out/tmlsr/2026/01/01/t/output.png")
