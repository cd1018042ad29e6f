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
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        ray.shutdown()
