"""Helpers shared by the tests: the shared assets, tiny random models, a real input HTTP server."""

from __future__ import annotations

import socket
import sys
import threading
import time
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
import pytest
import torch

from tmlsr_ray.models.basicsr_compat import import_architectures

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A file of ../shared, or a skip when this checkout has none beside it (a user's fresh clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the shared test assets are not beside this checkout)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def save_srvgg(path: Path, num_feat: int = 8, num_conv: int = 2, scale: int = 4, seed: int = 0,
               key: str = "params", weight_scale: float = 1.0) -> Path:
    """A random SRVGGNetCompact checkpoint, in the official file layout.

    A small ``weight_scale`` makes the output close to the nearest-neighbour upscale the network
    adds its residual to: smooth frames that encode like real model output.
    """
    _, srvgg = import_architectures()
    torch.manual_seed(seed)
    net = srvgg(num_in_ch=3, num_out_ch=3, num_feat=num_feat, num_conv=num_conv, upscale=scale, act_type="prelu")
    state = {name: tensor * weight_scale for name, tensor in net.state_dict().items()}
    torch.save({key: state}, path)
    return path


def save_rrdbnet(path: Path, scale: int = 4, num_feat: int = 8, num_block: int = 1, num_grow_ch: int = 4,
                 seed: int = 0) -> Path:
    rrdbnet, _ = import_architectures()
    torch.manual_seed(seed)
    net = rrdbnet(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=num_feat, num_block=num_block,
                  num_grow_ch=num_grow_ch)
    torch.save({"params_ema": net.state_dict()}, path)
    return path


def make_clip(path: Path, frames: int = 12, size=(64, 48), rate: int = 12, audio: bool = True,
              codec: str = "libx264", options: dict | None = None, pts: list | None = None,
              time_base=None, pix_fmt: str = "yuv420p", container: str | None = None) -> Path:
    """A short real clip made with PyAV: a brightness ramp with a noisy corner (so every frame
    differs), optionally AAC audio, any encoder options, and given timestamps (VFR)."""
    with av.open(str(path), "w", format=container) as out:
        video = out.add_stream(codec, rate=rate, options=options or {})
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
        if time_base is not None:
            video.time_base = video.codec_context.time_base = time_base
        sound = out.add_stream("aac", rate=16000) if audio else None
        rng = np.random.default_rng(0)
        for i in range(frames):
            pixels = np.full((size[1], size[0], 3), i * 255 // frames, np.uint8)
            pixels[:8, :8] = rng.integers(0, 255, (8, 8, 3))
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], video.codec_context.time_base
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound:
            samples = int(16000 * frames / rate)
            tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / 16000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = tone[None, start:start + 1024]
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


class _InputHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    """Serves files, plus ``/slow/<path>?seconds=S`` (trickled), ``/status/<code>``,
    ``/redirect?to=URL``, ``/chunked?bytes=N`` and ``/lying?declared=N&sent=M``."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path.startswith("/status/"):
            code = int(parts.path.rsplit("/", 1)[1])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["to"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == "/chunked":  # no Content-Length: only the stream tells the size
            size = int(parse_qs(parts.query)["bytes"][0])
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, size, 65536):
                chunk = b"c" * min(65536, size - start)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
            return
        if parts.path == "/lying":  # declares fewer bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", parse_qs(parts.query)["declared"][0])
            self.end_headers()
            self.wfile.write(b"l" * int(parse_qs(parts.query)["sent"][0]))
            return
        if parts.path.startswith("/slow/"):
            return self._trickle(parts.path[len("/slow"):], float(parse_qs(parts.query).get("seconds", ["5"])[0]))
        return super().do_GET()

    def _trickle(self, path: str, seconds: float):
        data = Path(self.translate_path(path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        steps = 20
        try:
            for i in range(steps):
                self.wfile.write(data[i * len(data) // steps : (i + 1) * len(data) // steps])
                self.wfile.flush()
                time.sleep(seconds / steps)
        except (BrokenPipeError, ConnectionResetError):
            pass


class QuietHTTPServer(ThreadingHTTPServer):
    """Clients that hang up early (timeouts, cancels, lying-server tests) are expected here."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class InputServer:
    def __init__(self, root: Path):
        self.root = root
        self._server = QuietHTTPServer(("127.0.0.1", 0), partial(_InputHandler, directory=str(root)))
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, relative: str) -> str:
        return f"{self.base}/{relative}"

    def add(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(name)

    def close(self) -> None:
        self._server.shutdown()


class WebhookReceiver:
    """A real HTTP endpoint on loopback that records every POST; answers ``statuses`` in turn
    (then 200), so tests can make a delivery fail a few times first."""

    def __init__(self, statuses: tuple = ()):
        self.received: list = []  # (path, headers, body bytes)
        self._statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((self.path, dict(self.headers), body))
                status = receiver._statuses.pop(0) if receiver._statuses else 200
                self.send_response(status)
                if 300 <= status < 400:  # a real redirect, to a path of this same receiver
                    self.send_header("Location", "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self._server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def events(self) -> list:
        import json

        return [json.loads(body)["event"] for _, _, body in self.received]

    def close(self) -> None:
        self._server.shutdown()
