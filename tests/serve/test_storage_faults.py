"""The data disk filling up under a task: the task fails readably, its files go, and the database
and the other tasks are untouched (OSS faults: tests/serve/test_oss_service.py)."""

import os

from tests.helpers import fetch_output, png_bytes, small_disk


def test_a_full_data_disk_fails_the_task_readably_and_the_service_goes_on(service, input_server):
    earlier = service.run(url=input_server.add("before-full.png", png_bytes(16, 16)), type="image", model="tiny-x4.pth")
    assert earlier["status"] == "completed", earlier["error"]
    too_big = input_server.add("too-big.png", os.urandom(2 * 1024**2))
    with small_disk(service.data_dir / "work", "1m") as work:  # where downloads and outputs are made
        task = service.run(url=too_big, type="image", model="tiny-x4.pth")
        assert task["status"] == "failed"
        assert task["error"].startswith("no space left on the data disk (download stage)"), task["error"]
        assert not list(work.iterdir()), "the failed task's files stayed on the full disk"
        after = service.run(url=input_server.add("after-full.png", png_bytes(16, 16)), type="image",
                            model="tiny-x4.pth")
        assert after["status"] == "completed", after["error"]
    assert service.task(earlier["task_id"])["status"] == "completed"
    assert fetch_output(earlier) and fetch_output(after)
