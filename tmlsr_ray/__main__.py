"""``python -m tmlsr_ray``: the ``tmlsr`` command (``python -m tmlsr_ray serve`` is ``make run``)."""

import sys

from tmlsr_ray.cli import main

if __name__ == "__main__":
    sys.exit(main())
