"""The ``tmlsr`` command against the running service."""

import json

from tests.helpers import free_port
from tests.serve.test_api import png_bytes
from tmlsr_ray.cli import EXIT_OK, EXIT_REFUSED, EXIT_TASK_FAILED, EXIT_UNREACHABLE, main, parser


def test_submit_wait_status_and_stats(service, input_server, capsys):
    url = input_server.add("cli.png", png_bytes(10, 8))
    code = main(["--server", service.base, "submit", url, "--type", "image", "--model", "tiny-x4.pth",
                 "--outscale", "2", "--wait", "--interval", "0.1"])
    out = capsys.readouterr().out
    task = json.loads(out)
    assert code == EXIT_OK and task["status"] == "completed"
    assert task["output"]["metadata"]["width"] == 20
    assert main(["--server", service.base, "status", task["task_id"]]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["task_id"] == task["task_id"]
    assert main(["--server", service.base, "stats"]) == EXIT_OK
    assert "system" in json.loads(capsys.readouterr().out)


def test_a_failed_task_exits_1_and_refusals_exit_2(service, input_server, capsys):
    code = main(["--server", service.base, "submit", input_server.url("missing.png"), "--type", "image",
                 "--model", "tiny-x4.pth", "--wait", "--interval", "0.1"])
    assert code == EXIT_TASK_FAILED and "HTTP 404" in json.loads(capsys.readouterr().out)["error"]
    assert main(["--server", service.base, "submit", "http://h/a.png", "--model", "../x"]) == EXIT_REFUSED
    assert "plain file name" in capsys.readouterr().err
    assert main(["--server", service.base, "cancel", "0" * 32]) == EXIT_REFUSED


def test_an_unreachable_service_exits_3(capsys):
    assert main(["--server", f"http://127.0.0.1:{free_port()}", "stats"]) == EXIT_UNREACHABLE
    assert "cannot reach" in capsys.readouterr().err


def test_options_are_named_like_the_api_fields():
    args = parser().parse_args(["submit", "http://h/v.mp4", "--output-magnification", "1.5",
                                "--output-dims", "640", "360", "--resolution", "720"])
    assert (args.output_magnification, args.output_dims, args.resolution) == (1.5, [640, 360], 720)
