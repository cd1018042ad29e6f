"""Python callers in another Ray job use the application through Serve handles."""

import json
import os
import subprocess
import sys

import ray

from tests.helpers import REPO, png_bytes

SECOND_DRIVER = """
import json, sys
import ray
from ray import serve
from tmlsr_ray.protocol import TaskRequest
ray.init(address=sys.argv[1], namespace="tmlsr", log_to_driver=False)
app = serve.get_app_handle("tmlsr")
created = app.submit_task.remote(TaskRequest(url=sys.argv[2], type="image", model="tiny-x4.pth")).result()
from tests.waiting import eventually  # not tests.helpers: its torch would cost this driver 5 s
task = eventually(lambda: app.get_task.remote(created.task_id).result(), 60, "the task ended",
                  until=lambda seen: seen.status.value in ("completed", "failed", "canceled"))
pending = app.submit_task.remote({"url": sys.argv[3], "type": "image", "model": "tiny-x4.pth"}).result()
canceled = app.cancel_task.remote(pending.task_id).result()
try:
    app.cancel_task.remote(pending.task_id).result()
    again = "no error"
except Exception as exc:
    again = type(exc).__name__
from tmlsr_ray.errors import InvalidRequest
refused = []
for call in (lambda: app.submit_task.remote({"url": sys.argv[2], "outscale": True}),
             lambda: app.submit_batch.remote("abc"), lambda: app.submit_batch.remote([]),
             lambda: app.submit_batch.remote({"tasks": []})):
    try:
        call().result()
        refused.append("no error")
    except InvalidRequest as exc:
        refused.append(str(exc).rsplit("InvalidRequest: ", 1)[-1])
print(json.dumps({"status": task.status.value, "width": task.output.metadata["width"],
                  "canceled": canceled.status, "again": again, "refused": refused}))
"""


def test_a_second_driver_submits_reads_and_cancels_through_handles(service, input_server):
    url = input_server.add("handle.png", png_bytes(12, 10))
    slow = input_server.url("slow/handle.png?seconds=30")
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    result = subprocess.run(
        [sys.executable, "-c", SECOND_DRIVER, ray.get_runtime_context().gcs_address, url, slow],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert (outcome["status"], outcome["width"], outcome["canceled"]) == ("completed", 48, "canceled")
    assert "TaskFinished" in outcome["again"]  # canceling twice tells the caller why
    # a bad body or batch is a typed refusal naming what is wrong, not a bare RayTaskError
    assert outcome["refused"][0].startswith("outscale: ") and "must be a number" in outcome["refused"][0]
    assert outcome["refused"][1:] == ["tasks: a non-empty list of task bodies, not a str",
                                      "tasks: a non-empty list of task bodies, not an empty list",
                                      "tasks: a non-empty list of task bodies, not a dict"]
