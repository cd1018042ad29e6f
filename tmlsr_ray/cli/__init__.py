"""``tmlsr``: the command-line client of the REST API (and ``tmlsr serve``, the service itself).

    tmlsr submit URL [URL ...] [--type image] [--model M] [--outscale 2] [--wait] [--json]
    tmlsr status TASK_ID | tmlsr cancel TASK_ID | tmlsr stats | tmlsr models | tmlsr serve
"""

from tmlsr_ray.cli.client import EXIT_OK, EXIT_REFUSED, EXIT_TASK_FAILED, EXIT_UNREACHABLE
from tmlsr_ray.cli.commands import cli, main

__all__ = ["EXIT_OK", "EXIT_REFUSED", "EXIT_TASK_FAILED", "EXIT_UNREACHABLE", "cli", "main"]
