"""The ``tmlsr`` command line as a shell sees it: ``python -m tmlsr_ray`` and Click's completion."""

import os
import subprocess
import sys

from tests.helpers import REPO


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
    assert options.stdout.split() == ["plain,png", "plain,jpeg", "plain,webp", "plain,mp4", "plain,mkv"]
