"""The ``tmlsr`` command against the running service."""

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from tests.helpers import REPO, eventually, free_port, png_bytes
from tmlsr_ray.cli import EXIT_OK, EXIT_REFUSED, EXIT_TASK_FAILED, EXIT_UNREACHABLE, main
from tmlsr_ray.cli.client import ApiClient, CliError

IMAGE = ["--type", "image", "--model", "tiny-x4.pth"]


def test_submit_takes_the_server_after_the_command_waits_and_prints_json(service, input_server, capsys):
    url = input_server.add("cli.png", png_bytes(10, 8))
    code = main(["submit", url, *IMAGE, "--outscale", "2", "--wait", "--server", service.base, "--json",
                 "--interval", "0.1"])
    captured = capsys.readouterr()
    [task] = json.loads(captured.out)["tasks"]
    assert code == EXIT_OK and task["status"] == "completed"
    assert task["output"]["metadata"]["width"] == 20
    assert task["task_id"][:8] in captured.err  # its progress bar

    assert main(["status", task["task_id"], "--json", "--server", service.base]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["task_id"] == task["task_id"]
    assert main(["--server", service.base, "--json", "stats"]) == EXIT_OK
    assert "system" in json.loads(capsys.readouterr().out)


def test_wait_by_polling_prints_each_task_with_its_output(service, input_server, capsys):
    url = input_server.add("cli-poll.png", png_bytes(12, 8, seed=1))
    code = main(["--server", service.base, "submit", url, *IMAGE, "--wait", "--poll", "--interval", "0.1"])
    task_id, status, output = capsys.readouterr().out.split()
    assert code == EXIT_OK and status == "completed" and output == service.task(task_id)["output"]["url"]
    assert main(["--server", service.base, "status", task_id]) == EXIT_OK
    text = capsys.readouterr().out
    assert f"task    {task_id}  completed  (image, tiny-x4.pth)" in text and "process   success" in text


def test_several_urls_make_one_task_each_and_a_refused_one_exits_2(service, input_server, capsys):
    """Through POST /tasks/batch, or one POST /tasks each where the service has no batch route."""
    first, second = (input_server.add(f"cli-batch-{i}.png", png_bytes(8, 8, seed=i)) for i in (1, 2))
    code = main(["--server", service.base, "--json", "submit", first, "http://h/with space.png", second, *IMAGE,
                 "--wait", "--interval", "0.1"])
    tasks = json.loads(capsys.readouterr().out)["tasks"]
    assert code == EXIT_REFUSED
    assert [t["status"] for t in tasks] == ["completed", "error", "completed"]
    assert [tasks[0]["params"]["url"], tasks[2]["params"]["url"]] == [first, second]
    assert "spaces" in tasks[1]["error"] and tasks[1]["url"] == "http://h/with space.png"

    code = main(["--server", service.base, "submit", first, "http://h/with space.png", second, *IMAGE])
    captured = capsys.readouterr()
    ids = captured.out.split()
    assert code == EXIT_REFUSED and len(ids) == 2 and "with space.png" in captured.err
    assert [service.task(task_id)["params"]["url"] for task_id in ids] == [first, second]


def test_options_are_named_like_the_api_fields(service, input_server, capsys):
    code = main(["--server", service.base, "submit", input_server.url("missing.mp4"), "--model", "tiny-x4.pth",
                 "--output-magnification", "1.5", "--output-dims", "640", "360", "--video-codec", "h264",
                 "--crf", "30", "--hdr", "sdr", "--damaged-frames", "repeat"])
    params = service.task(capsys.readouterr().out.strip())["params"]
    assert code == EXIT_OK
    assert (params["output_magnification"], params["output_dims"], params["video_codec"], params["crf"]) == (
        1.5, [640, 360], "h264", 30)
    assert (params["hdr"], params["damaged_frames"]) == ("sdr", "repeat")


def test_a_failed_task_exits_1_and_refusals_exit_2(service, input_server, capsys):
    code = main(["--server", service.base, "--json", "submit", input_server.url("missing.png"), *IMAGE, "--wait",
                 "--interval", "0.1"])
    assert code == EXIT_TASK_FAILED and "HTTP 404" in json.loads(capsys.readouterr().out)["tasks"][0]["error"]
    assert main(["--server", service.base, "submit", "http://h/a.png", "--model", "../x"]) == EXIT_REFUSED
    assert "plain file name" in capsys.readouterr().err
    assert main(["--server", service.base, "cancel", "0" * 32]) == EXIT_REFUSED


def test_an_unreachable_service_exits_3(capsys):
    assert main(["--server", f"http://127.0.0.1:{free_port()}", "stats"]) == EXIT_UNREACHABLE
    assert "cannot reach" in capsys.readouterr().err


def test_models_lists_name_family_architecture_scale_and_loaded(service, capsys):
    assert main(["models", "--server", service.base]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "FAMILY", "ARCHITECTURE", "SCALE", "LOADED", "ERROR"]
    assert next(line for line in lines if line.startswith("tiny-hat-x2.pth")).split()[1:4] == ["spandrel", "HAT", "x2"]
    assert "face-restoration" in next(line for line in lines if line.startswith("tiny-face.pth"))
    assert main(["models", "--json", "--server", service.base]) == EXIT_OK
    models = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert models["tiny-x4.pth"]["scale"] == 4 and models["tiny-x4.pth"]["family"] == "realesrgan"


def test_the_server_and_token_come_from_the_environment(secured, monkeypatch, capsys):
    monkeypatch.setenv("TMLSR_SERVER", secured)
    assert main(["stats"]) == EXIT_REFUSED and "401" in capsys.readouterr().err
    monkeypatch.setenv("TMLSR_TOKEN", "s3cret")
    assert main(["stats", "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["system"]["max_workers"] == 1
    assert main(["stats", "--token", "wrong"]) == EXIT_REFUSED  # an option wins over the environment


@pytest.mark.parametrize("argv", [["submit"], ["--nope", "stats"], ["submit", "http://h/a.png", "--type", "gif"],
                                  ["submit", "http://h/a", "http://h/b", "--idempotency-key", "k"]])
def test_a_wrong_command_line_exits_2_before_calling(argv, capsys):
    assert main(["--server", f"http://127.0.0.1:{free_port()}", *argv]) == EXIT_REFUSED
    assert "Usage: tmlsr" in capsys.readouterr().err


@pytest.mark.parametrize("server", ["not-a-url", "localhost:6008", "ftp://h", "http://", "http://[::1", "http://h:abc",
                                    "http://h:99999"])
def test_a_mistyped_server_address_is_a_wrong_command_line(server, capsys):
    assert main(["--server", server, "stats"]) == EXIT_REFUSED
    assert "is not an http(s) address" in capsys.readouterr().err
    assert main(["stats", "--server", server]) == EXIT_REFUSED


def test_ctrl_c_while_waiting_prints_the_task_ids_and_exits_130(service, input_server, tmp_path):
    """The tasks go on after Ctrl-C; the command printed nothing on stdout and exited 1 (a failed
    task's code), so a task left running could be neither found nor canceled from its output."""
    input_server.add("cli-interrupted.png", png_bytes(8, 8, seed=3))
    url = input_server.url("slow/cli-interrupted.png?seconds=30")
    errors = tmp_path / "stderr"
    with errors.open("w") as stderr:
        command = subprocess.Popen([sys.executable, "-m", "tmlsr_ray", "--server", service.base, "--json", "submit",
                                    url, *IMAGE, "--wait"], stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            eventually(errors.read_text, 60, "the command's download bar", until=lambda text: "download" in text)
        finally:  # a command left waiting would outlive the test
            command.send_signal(signal.SIGINT)
            out, _ = command.communicate(timeout=30)
    [task] = json.loads(out)["tasks"]
    assert command.returncode == 130 and task["url"] == url
    assert service.task(task["task_id"])["status"] in ("pending", "processing")  # still going
    assert "tmlsr cancel" in errors.read_text() and "Traceback" not in errors.read_text()
    requests.delete(service.url(f"/tasks/{task['task_id']}"), timeout=30)


def test_a_task_id_is_one_path_segment_whatever_it_holds(service, input_server, capsys):
    """``cancel ID#x`` and ``cancel ID?x`` canceled task ID (the URL cut there); ``status
    ../monitor/stats`` read the stats and ended in a KeyError traceback."""
    input_server.add("cli-segment.png", png_bytes(8, 8, seed=4))
    task_id = service.submit(url=input_server.url("slow/cli-segment.png?seconds=30"), type="image",
                             model="tiny-x4.pth")["task_id"]
    for typed in (f"{task_id}#x", f"{task_id}?x"):
        assert main(["--server", service.base, "cancel", typed]) == EXIT_REFUSED
    assert service.task(task_id)["status"] in ("pending", "processing")
    assert main(["--server", service.base, "status", "../monitor/stats"]) == EXIT_REFUSED
    assert "not found" in capsys.readouterr().err
    assert main(["--server", service.base, "cancel", task_id]) == EXIT_OK


def test_a_service_lost_while_waiting_still_prints_the_submitted_tasks(service, input_server, monkeypatch, capsys):
    """Following failed (the service went away after the submission): the command printed nothing
    on stdout, so the task it had created was lost to the caller."""
    url = input_server.add("cli-lost.png", png_bytes(8, 8, seed=6))

    def service_gone(*_args, **_kwargs):
        raise CliError(f"cannot reach {service.base}: connection refused", EXIT_UNREACHABLE)

    monkeypatch.setattr(ApiClient, "follow", service_gone)
    code = main(["--server", service.base, "--json", "submit", url, *IMAGE, "--wait"])
    captured = capsys.readouterr()
    [task] = json.loads(captured.out)["tasks"]
    assert code == EXIT_UNREACHABLE and "cannot reach" in captured.err
    assert service.wait(task["task_id"])["params"]["url"] == url
