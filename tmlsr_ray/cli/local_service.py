"""``tmlsr serve`` (and ``make run``): the service on a local Ray instance, in the foreground."""

from __future__ import annotations

import signal
import threading

from tmlsr_ray.config import Settings


def serve_locally(settings: Settings) -> None:
    import ray
    from ray import serve

    from tmlsr_ray.app import APP_NAME, build_app

    ray.init(namespace="tmlsr")
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    print(f"TMLSR-Ray serving on http://{settings.host}:{settings.port} (Ctrl-C stops)", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell starts a background job with it ignored
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):  # a signal another thread took runs its handler only when this one wakes
            pass
    finally:
        _shut_down(serve.shutdown)
        ray.shutdown()


def _shut_down(shutdown, timeout_s: float = 30.0) -> None:
    """Serve's shutdown asks its controller, which waits forever once the Ray instance was
    stopped under it (``ray stop``): a bounded wait, then the process ends anyway."""
    worker = threading.Thread(target=shutdown, daemon=True)
    worker.start()
    worker.join(timeout_s)
