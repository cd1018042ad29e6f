"""The dashboard: package files (``tmlsr_ray/dashboard/``: the page, its stylesheet, its script
modules) that the ingress serves from disk. No CDN, no build step, nothing from the internet.

``GET <prefix>/dashboard`` answers ``index.html``, which loads the others as
``<prefix>/dashboard/<file>``. The scripts call the API with URLs relative to the page, so it
works under any route prefix, and send the API token (asked for on the first 401, kept in the
tab's sessionStorage) with every call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from fastapi.responses import FileResponse

DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboard"
PAGE = "index.html"
_MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".js": "text/javascript; charset=utf-8"}


def dashboard_response(name: str) -> Optional[FileResponse]:
    """The dashboard's file ``name``; ``None`` for any other name (nothing outside the folder,
    nothing but the page's own kinds of file)."""
    path = DASHBOARD_DIR / name
    media_type = _MEDIA_TYPES.get(path.suffix)
    if media_type is None or path.parent != DASHBOARD_DIR or not path.is_file():
        return None
    # Revalidated on every load (the ETag makes that cheap), so an upgraded service shows at once.
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})
