"""Session fixtures: tiny models and a real input HTTP server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SHARED, InputServer, save_srvgg


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    return save_srvgg(tmp_path_factory.mktemp("models") / "tiny-x4.pth")


@pytest.fixture(scope="session")
def input_server(tmp_path_factory):
    """A real HTTP server on loopback with the shared media linked in (when present)."""
    root = tmp_path_factory.mktemp("inputs")
    media = SHARED / "media"
    if media.is_dir():
        (root / "media").symlink_to(media)
    server = InputServer(root)
    yield server
    server.close()
