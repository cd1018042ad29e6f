"""The ``tmlsr`` command line as a shell sees it: ``python -m tmlsr_ray`` and Click's completion."""

import json
import os
import subprocess
import sys

from tests.helpers import REPO, WebhookReceiver, free_port
from tmlsr_ray.cli import EXIT_REFUSED, EXIT_UNREACHABLE, main


def run_tmlsr(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "tmlsr_ray", *args], capture_output=True, text=True, timeout=120,
                          env=environment, cwd=REPO)


def test_python_dash_m_is_the_tmlsr_command():
    result = run_tmlsr("--help")
    assert result.returncode == 0 and result.stdout.startswith("Usage: tmlsr")
    assert all(name in result.stdout for name in ("submit", "status", "cancel", "stats", "models", "serve"))


def test_bash_completion_is_click_s_own():
    script = run_tmlsr(_TMLSR_COMPLETE="bash_source")
    assert script.returncode == 0 and "_tmlsr_completion" in script.stdout
    words = run_tmlsr(_TMLSR_COMPLETE="bash_complete", COMP_WORDS="tmlsr su", COMP_CWORD="1")
    assert words.stdout.split() == ["plain,submit"]
    options = run_tmlsr(_TMLSR_COMPLETE="bash_complete", COMP_WORDS="tmlsr submit URL --output-format ",
                        COMP_CWORD="4")
    assert options.stdout.split() == ["plain,png", "plain,jpeg", "plain,webp", "plain,mp4", "plain,mkv",
                                      "plain,mov"]


def test_a_web_server_that_is_not_the_service_exits_3_with_what_it_answered(input_server, capsys):
    """A 200 with an HTML page (a site's index, a captive proxy) or JSON that is no object ended in
    a KeyError traceback, exit 1. The server has a path prefix, as behind a reverse proxy."""
    site = input_server.root / "site"
    (site / "tasks").mkdir(parents=True)
    (site / "tasks" / "abc").write_text("<html><body>Welcome to nginx</body></html>")
    (site / "models").write_text("[]")
    for argv, path, said in ((["status", "abc"], "site/tasks/abc", "Welcome to nginx"),
                             (["models"], "site/models", "[]")):
        assert main(["--server", input_server.url("site"), *argv]) == EXIT_UNREACHABLE
        error = capsys.readouterr().err
        assert input_server.url(path) in error
        assert "did not answer as the TMLSR service does" in error and said in error and "Traceback" not in error


def test_many_urls_go_in_batches_the_service_takes_in_their_order():
    from tmlsr_ray.cli.client import BATCH_BODIES, BATCH_BYTES, batches

    short = [{"url": f"https://h/{i}.png"} for i in range(250)]
    assert [len(batch) for batch in batches(short)] == [BATCH_BODIES, BATCH_BODIES, 50]
    signed = [{"url": f"https://h/{i}.png?sig=" + "a" * 1000} for i in range(100)]
    split = list(batches(signed))
    assert len(split) > 1 and all(len(json.dumps({"tasks": batch})) <= BATCH_BYTES for batch in split)
    assert [body for batch in split for body in batch] == signed


def test_a_refused_url_is_printed_with_its_credentials_hidden_and_sent_as_typed(capsys):
    """The refusal line and the --json item quoted the URL as typed, password or token included,
    into terminals and CI logs; the service shows such a URL hidden everywhere. (A service without
    the batch route, 404, that refuses each task, 422: each refusal is the CLI's own line.)"""
    urls = ["https://user:secret@h/a.png", "https://secret@h/b.png"]
    service = WebhookReceiver(statuses=(404, 422, 422) * 2)
    try:
        server = service.url.removesuffix("/hook")
        assert main(["--server", server, "submit", *urls]) == EXIT_REFUSED
        said = capsys.readouterr().err
        assert main(["--server", server, "--json", "submit", *urls]) == EXIT_REFUSED
        items = json.loads(capsys.readouterr().out)["tasks"]
    finally:
        service.close()
    assert "secret" not in said and "https://user:***@h/a.png" in said and "https://***@h/b.png" in said
    assert [item["url"] for item in items] == ["https://user:***@h/a.png", "https://***@h/b.png"]
    sent = [json.loads(body)["url"] for path, _, body in service.received if path == "/tasks"]
    assert sent == urls * 2


def test_a_server_address_with_credentials_is_printed_with_them_hidden(input_server, capsys):
    """A service behind a proxy's Basic auth is given as --server https://user:pass@host: the
    address was quoted as typed when it was mistyped, unreachable, or not the service."""
    (input_server.root / "proxied" / "models").parent.mkdir(exist_ok=True)
    (input_server.root / "proxied" / "models").write_text("<html>Sign in</html>")
    with_password = input_server.url("proxied").replace("http://", "http://user:secret@")
    unreachable = f"http://user:secret@127.0.0.1:{free_port()}"
    for server, code in ((with_password, EXIT_UNREACHABLE), (unreachable, EXIT_UNREACHABLE),
                         ("http://secret@h:abc", EXIT_REFUSED)):
        assert main(["--server", server, "models"]) == code
        said = capsys.readouterr().err
        assert "secret" not in said and "***@" in said, said
